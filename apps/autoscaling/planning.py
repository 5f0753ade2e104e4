"""The autoscaler's arithmetic, with no database and no clock of its own: what one
service should run given its settings, its current replicas and what was measured.

Proportional, as Kubernetes' horizontal autoscaler: `ceil(current * observed / target)`
replicas bring the per-container figure back to the target. Then, in this order:
- a service outside its bounds is brought inside them at once (settings, not load);
- fewer than MIN_SAMPLES sampling times in the window: no decision (an empty window is
  not an idle service, and one reading is not a trend);
- inside the cooldown after the last scale: hold;
- scaling in aims `margin` below the target (hysteresis: the containers that remain
  must not land right above the target and scale out again);
- at most `step` replicas added or removed by one decision, within [min, max].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: Sampling times a decision needs at least.
MIN_SAMPLES = 2


@dataclass(frozen=True)
class Settings:
    """A service's autoscaling settings as plain numbers."""

    min_replicas: int
    max_replicas: int
    target: float
    cooldown_seconds: int = 120
    step: int = 2
    margin: float = 0.1


@dataclass(frozen=True)
class Decision:
    """What to run and why: `action` is out, in, hold or none; `figures` are the
    numbers that drove it (recorded with the Event)."""

    action: str
    current: int
    desired: int
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return self.desired != self.current


def plan(
    settings: Settings,
    current: int,
    observed: float | None,
    *,
    now: datetime,
    last_scaled_at: datetime | None = None,
    samples: int = 0,
) -> Decision:
    """The decision for one service. `observed` is the per-container figure in the
    target's unit averaged over the window (None: nothing measured), `samples` how many
    sampling times it rests on."""
    figures: dict[str, Any] = {
        "current": current,
        "observed": None if observed is None else round(observed, 2),
        "target": settings.target,
        "samples": samples,
    }
    low, high = settings.min_replicas, settings.max_replicas
    if current < low or current > high:
        desired = min(max(current, low), high)
        action = "out" if desired > current else "in"
        reason = f"{current} is outside the bounds {low}-{high}"
        return Decision(action, current, desired, reason, {**figures, "desired": desired})
    if observed is None or samples < MIN_SAMPLES or current <= 0:
        reason = "no metrics in the window" if observed is None else "too few samples yet"
        return Decision("none", current, current, reason, figures)
    wanted = _wanted(settings, current, observed)
    figures["wanted"] = wanted
    if wanted == current:
        return Decision("none", current, current, _compare(settings, observed, "near"), figures)
    if last_scaled_at is not None and now < last_scaled_at + timedelta(
        seconds=settings.cooldown_seconds
    ):
        left = (last_scaled_at + timedelta(seconds=settings.cooldown_seconds) - now).seconds
        return Decision(
            "hold", current, current, f"cooling down ({left} s left); wants {wanted}", figures
        )
    if wanted > current:
        desired = min(current + settings.step, wanted, high)
    else:
        desired = max(current - settings.step, wanted, low)
    figures["desired"] = desired
    if desired == current:
        return Decision("none", current, current, f"bounded at {current}", figures)
    action = "out" if desired > current else "in"
    word = "above" if action == "out" else "below"
    return Decision(action, current, desired, _compare(settings, observed, word), figures)


def _wanted(settings: Settings, current: int, observed: float) -> int:
    """Replicas the load asks for: proportional out; in only as far as keeps the
    remaining containers `margin` below the target."""
    load = current * observed
    out = math.ceil(round(load / settings.target, 6))
    if out > current:
        return out
    lowered = settings.target * (1 - settings.margin)
    return min(current, max(math.ceil(round(load / lowered, 6)), 1))


def _compare(settings: Settings, observed: float, word: str) -> str:
    return f"{observed:.1f} per container is {word} the target {settings.target:g}"


def per_container(points: dict[datetime, list[float]]) -> tuple[float | None, int]:
    """(The mean over time of the mean over containers, the number of times):
    `points` maps each sampling time to the figures of the containers measured then.
    (None, 0) when empty."""
    means = [sum(values) / len(values) for values in points.values() if values]
    if not means:
        return None, 0
    return sum(means) / len(means), len(means)
