"""The storage tiers and the pure arithmetic of downsampling (no database here).

Tier 0 holds the collector's raw rows; each further tier holds one row per series per
`step` seconds, aggregated from the tier before it, and every tier keeps its rows for
`retention` seconds (BERTH_METRICS_TIERS). A chart or an alert asks for a range, and
`choose_tier` picks the finest tier that still holds its start and gives a bounded
number of points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

#: At most this many points per series in one answer, unless no tier is coarse enough.
MAX_POINTS = 1500


@dataclass(frozen=True)
class Tier:
    """One storage tier: rows every `step` seconds, kept `retention` seconds."""

    index: int
    step: int
    retention: int


def parse_tiers(text: str) -> list[Tier]:
    """Tiers from `step:retention,...` in seconds, finest first (`10:86400,60:604800`).

    Each step must divide the next (a coarse bucket is whole fine buckets) and each
    retention must be longer than the one before; a bad value is refused at start-up
    with a message naming the setting.
    """
    tiers: list[Tier] = []
    for index, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        step_text, _, keep_text = part.partition(":")
        try:
            step, keep = int(step_text), int(keep_text)
        except ValueError:
            raise ValueError(
                f"BERTH_METRICS_TIERS: {part!r} is not step:retention in whole seconds"
            ) from None
        if step <= 0 or keep < step:
            raise ValueError(f"BERTH_METRICS_TIERS: {part!r} needs 0 < step <= retention")
        if tiers and (step % tiers[-1].step or keep <= tiers[-1].retention):
            raise ValueError(
                f"BERTH_METRICS_TIERS: {part!r} must be a multiple of the previous step "
                "and kept longer than the previous tier"
            )
        tiers.append(Tier(index, step, keep))
    if not tiers:
        raise ValueError("BERTH_METRICS_TIERS: at least one tier (the raw one) is needed")
    return tiers


def configured() -> list[Tier]:
    from django.conf import settings

    return parse_tiers(settings.BERTH_METRICS_TIERS)


def choose_tier(
    tiers: Sequence[Tier], start: datetime, end: datetime, now: datetime | None = None
) -> Tier:
    """The finest tier that still holds `start` and answers with at most MAX_POINTS
    points over [start, end]; the coarsest one when none does both."""
    now = now or timezone.now()
    span = max((end - start).total_seconds(), 0.0)
    for tier in tiers:
        holds = start >= now - timedelta(seconds=tier.retention)
        if holds and span / tier.step <= MAX_POINTS:
            return tier
    return tiers[-1]


def bucket_start(at: datetime, step: int) -> datetime:
    """The start of the `step`-second bucket `at` falls in (aligned on the epoch)."""
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, tz=at.tzinfo or timezone.utc)


def complete_until(now: datetime, tier: Tier, source: Tier) -> datetime:
    """Buckets of `tier` starting before this are complete: the source tier's last row
    for them is written (the source's own step of slack for a pass still writing)."""
    return bucket_start(now - timedelta(seconds=source.step * 2), tier.step)


def aggregate(rows: Sequence[Mapping[str, Any]], spec: Mapping[str, str]) -> dict[str, Any]:
    """One coarse row from the fine rows of one series in one bucket (ordered by time).

    `avg` is weighted by each row's `samples` (a 1-minute row stands for six raw
    rows), `max` ignores missing values, `last` keeps the newest (counters: rates come
    from two rows' difference, whatever the tier), `sum` adds (restarts counted).
    """
    weights = [int(r.get("samples") or 1) for r in rows]
    out: dict[str, Any] = {"samples": sum(weights)}
    for name, how in spec.items():
        values = [r.get(name) for r in rows]
        present = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
        if how == "last":
            out[name] = values[-1]
        elif not present:
            out[name] = None
        elif how == "avg":
            out[name] = sum(v * w for v, w in present) / sum(w for _, w in present)
        elif how == "max":
            out[name] = max(v for v, _ in present)
        elif how == "sum":
            out[name] = sum(v for v, _ in present)
        else:
            raise ValueError(f"unknown aggregate {how!r} for {name}")
    return out


def counter_delta(previous: int | None, current: int) -> int:
    """What a counter added between two readings; a drop means it restarted from zero
    (a container re-created, HAProxy reloaded), so the new value is all it added."""
    if previous is None:
        return 0
    return current - previous if current >= previous else current


def rates(points: Iterable[tuple[datetime, int]]) -> list[tuple[datetime, float]]:
    """Per-second rates of a counter between consecutive points (resets handled)."""
    out: list[tuple[datetime, float]] = []
    before: tuple[datetime, int] | None = None
    for at, value in points:
        if before is not None:
            seconds = (at - before[0]).total_seconds()
            if seconds > 0:
                out.append((at, counter_delta(before[1], value) / seconds))
        before = (at, value)
    return out


def cpu_percent(previous: tuple[datetime, int] | None, at: datetime, cpu_ns: int) -> float | None:
    """CPU % of one CPU between two cumulative CPU-time readings (None for the first,
    or after the container's counter restarted)."""
    if previous is None or cpu_ns < previous[1]:
        return None
    seconds = (at - previous[0]).total_seconds()
    if seconds <= 0:
        return None
    return round((cpu_ns - previous[1]) / (seconds * 1e9) * 100.0, 2)


#: Seconds before a window's start in which a container's creation still makes its
#: first start in the window a first start: windows begin at whole seconds, and a
#: container created then, started a moment later, was listed running by the previous
#: pass while its start event falls in this window.
FIRST_START_SLACK = 2.0


def restarts(starts: int, created: float, since: float) -> int:
    """Restarts among `starts` counted since `since`: a container created within the
    window (or just before it: FIRST_START_SLACK) started once without restarting."""
    return max(starts - (1 if created >= since - FIRST_START_SLACK else 0), 0)
