"""Health checks: berth.yml's `health_check` in the revision spec, and the rules that
decide when an unhealthy container is replaced and when a service is flapping.

berth.yml may declare a check in Compose's form (run by Docker inside the container) or
as Berth's own probe (`http:` or `tcp:`, run by the worker against the container's
address, see probes.py). `apply_health_checks` writes either into the spec at render time,
so a revision carries the check its containers get, and a rollback brings the old one
back. Everything else here is pure: timings and outcomes in, decisions out, so the rules
are tested with plain data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from apps.compose.values import duration

# Docker's defaults for a check that does not say (its HEALTHCHECK documentation).
DOCKER_INTERVAL, DOCKER_TIMEOUT, DOCKER_RETRIES = 30.0, 30.0, 3
# Berth's probes knock from the worker: shorter defaults, and a timeout that never
# holds a health pass for long.
PROBE_INTERVAL, PROBE_TIMEOUT, PROBE_RETRIES = 10.0, 5.0, 3
FIRST_PROBE = 1.0
# Flapping: this many replacements within the window flag the service; it clears after a
# window without one. A flapping service is still replaced, at most once per backoff, so
# a broken image does not keep the host busy creating containers.
FLAP_COUNT = 3
FLAP_WINDOW = timedelta(minutes=10)
FLAP_BACKOFF = timedelta(minutes=1)
KEPT = timedelta(hours=1)  # Service.replacements keeps the last hour


@dataclass(frozen=True)
class Check:
    """How one service's containers are checked, in seconds.

    `kind` is "docker" (Docker runs the Compose/berth.yml/image check), "http" or "tcp"
    (Berth probes `port`), or "none" (no check declared in the spec: the image may still
    have one, judged with Docker's defaults).
    """

    kind: str = "none"
    port: int = 0
    path: str = "/"
    expect_status: int | None = None
    interval: float = DOCKER_INTERVAL
    timeout: float = DOCKER_TIMEOUT
    retries: int = DOCKER_RETRIES
    start_period: float = 0.0

    @property
    def probed(self) -> bool:
        return self.kind in ("http", "tcp")

    @property
    def threshold(self) -> float:
        """How long a container may stay unhealthy before it is replaced."""
        return max(1, self.retries) * self.interval


# --- berth.yml into the spec --------------------------------------------------------------


def apply_health_checks(spec: dict, config: Mapping[str, Any] | None) -> dict:
    """The spec with berth.yml's per-service `health_check` applied (a copy when changed).

    Compose's form replaces the service's Compose `healthcheck` key by key (a key left out
    keeps the Compose file's value; no `test` anywhere keeps the image's HEALTHCHECK);
    `disable: true` turns every check off. Berth's `http`/`tcp` probe turns Docker's
    check off (the probe alone decides) and is kept, as written, under
    spec["berth"]["services"][name]["health_check"], where the prober and the frontier
    read it.
    """
    wanted = {
        name: conf["health_check"]
        for name, conf in ((config or {}).get("services") or {}).items()
        if isinstance(conf, Mapping) and isinstance(conf.get("health_check"), Mapping)
    }
    services = (spec.get("project") or {}).get("services") or {}
    wanted = {name: raw for name, raw in wanted.items() if name in services}
    if not wanted:
        return spec
    spec = copy.deepcopy(spec)
    for name, raw in wanted.items():
        service = spec["project"]["services"][name]
        service["healthcheck"] = compose_healthcheck(service.get("healthcheck"), raw)
        berth = spec.setdefault("berth", {}).setdefault("services", {}).setdefault(name, {})
        berth["health_check"] = copy.deepcopy(dict(raw))
    return spec


def compose_healthcheck(current: Mapping[str, Any] | None, raw: Mapping[str, Any]) -> dict:
    """The spec's `healthcheck` (the Healthcheck dataclass as JSON, seconds) after
    berth.yml's `raw` check: what Docker is told to run."""
    result: dict[str, Any] = {
        "test": None,
        "interval": None,
        "timeout": None,
        "start_period": None,
        "start_interval": None,
        "retries": None,
        **dict(current or {}),
    }
    if raw.get("disable") is True or "http" in raw or "tcp" in raw:
        return {**result, "test": ["NONE"]}
    if "test" in raw:
        test = raw["test"]
        result["test"] = ["CMD-SHELL", test] if isinstance(test, str) else list(test)
    for key in ("interval", "timeout", "start_period"):
        if key in raw:
            result[key] = duration(raw[key], strict=True)
    if "retries" in raw:
        result["retries"] = int(raw["retries"])
    return result


def check_of(spec: Mapping[str, Any] | None, service: str) -> Check:
    """The check a service's containers get under this spec (defaults filled in)."""
    if not spec:
        return Check()
    raw = berth_check(spec, service)
    if raw and ("http" in raw or "tcp" in raw):
        kind = "http" if "http" in raw else "tcp"
        target = raw[kind] or {}
        interval = _seconds(raw.get("interval"), PROBE_INTERVAL)
        return Check(
            kind=kind,
            port=int(target.get("port") or 0),
            path=str(target.get("path") or "/"),
            expect_status=target.get("expect_status"),
            interval=interval,
            timeout=min(_seconds(raw.get("timeout"), PROBE_TIMEOUT), interval),
            retries=int(raw.get("retries", PROBE_RETRIES)),
            start_period=_seconds(raw.get("start_period"), 0.0),
        )
    project = spec.get("project") or {}
    check = ((project.get("services") or {}).get(service) or {}).get("healthcheck") or {}
    test = check.get("test")
    if test and test[0] == "NONE":
        return Check(kind="none")
    return Check(
        kind="docker" if test else "none",
        interval=check.get("interval") or DOCKER_INTERVAL,
        timeout=check.get("timeout") or DOCKER_TIMEOUT,
        retries=DOCKER_RETRIES if check.get("retries") is None else int(check["retries"]),
        start_period=check.get("start_period") or 0.0,
    )


def berth_check(spec: Mapping[str, Any], service: str) -> Mapping[str, Any] | None:
    """berth.yml's health_check of `service` as the spec keeps it, or None."""
    services = ((spec.get("berth") or {}).get("services")) or {}
    raw = (services.get(service) or {}).get("health_check")
    return raw if isinstance(raw, Mapping) else None


def probed_services(spec: Mapping[str, Any] | None) -> set[str]:
    """The services whose health Berth's own probe decides (http or tcp checks)."""
    if not spec:
        return set()
    names = (((spec.get("berth") or {}).get("services")) or {}).keys()
    return {name for name in names if check_of(spec, name).probed}


def _seconds(value: Any, default: float) -> float:
    return default if value is None else duration(value, strict=True)


# --- a probe's outcome, Docker's way ----------------------------------------------------------


@dataclass(frozen=True)
class ProbeState:
    """What Berth knows of one container's probe: its health as Docker would say it,
    the last outcome, the failures in a row, when it turned unhealthy (0: it is not)
    and when it was last probed (epoch seconds)."""

    health: str = "starting"
    reason: str = ""
    failures: int = 0
    since: float = 0.0
    last: float = 0.0


def after_probe(
    state: ProbeState, ok: bool, reason: str, check: Check, started: float, now: float
) -> ProbeState:
    """Docker's rules for a probe outcome: a success makes the container healthy; during
    the start period a failure only keeps it starting; after it, `retries` failures in a
    row make it unhealthy (and `since` remembers from when)."""
    if ok:
        return ProbeState(health="healthy", reason=reason, last=now)
    if now < started + check.start_period and state.health == "starting":
        return replace(state, reason=reason, last=now)
    failures = state.failures + 1
    if failures >= max(1, check.retries) or state.health == "unhealthy":
        since = state.since or now
        return ProbeState("unhealthy", reason, failures, since, now)
    return replace(state, reason=reason, failures=failures, last=now)


def due(state: ProbeState | None, check: Check, started: float, now: float) -> bool:
    """A container is probed once per interval; the first time FIRST_PROBE after it
    started (or one interval, when shorter), so a new container is seen healthy soon
    without waiting a whole interval."""
    if state is None or not state.last:
        return now >= started + min(check.interval, FIRST_PROBE)
    return now >= state.last + check.interval


def unhealthy_since(health: str, known: float, now: float) -> float:
    """When a container seen with `health` turned unhealthy (0: it is not): the first
    time a pass saw it so, kept while it stays so."""
    if health != "unhealthy":
        return 0.0
    return known or now


# --- replacement and flapping ---------------------------------------------------------------


def past_threshold(check: Check, started: float, since: float, now: float) -> bool:
    """Unhealthy for longer than retries x interval, counted after the start period."""
    if not since:
        return False
    counted_from = max(since, started + check.start_period)
    return now - counted_from >= check.threshold


def recent(replacements: Iterable[str], now: datetime, window: timedelta = KEPT) -> list[str]:
    """The replacements (ISO times) within `window` of `now`, oldest first."""
    kept = []
    for stamp in replacements:
        try:
            when = datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            continue
        if now - when <= window:
            kept.append(when)
    return [when.isoformat() for when in sorted(kept)]


def record_replacement(replacements: Iterable[str], now: datetime) -> list[str]:
    """Service.replacements after one more at `now`: the last hour, newest last."""
    return recent([*replacements, now.isoformat()], now)


def flapping_count(replacements: Iterable[str], now: datetime) -> int:
    """Replacements within the flapping window."""
    return len(recent(replacements, now, FLAP_WINDOW))


def is_flapping(replacements: Iterable[str], now: datetime) -> bool:
    """FLAP_COUNT or more replacements within the window. Once no replacement happened
    for a whole window the count is 0, which is how flapping clears."""
    return flapping_count(replacements, now) >= FLAP_COUNT


def may_replace(replacements: Iterable[str], flapping: bool, now: datetime) -> bool:
    """A flapping service waits FLAP_BACKOFF after its last replacement; others do not."""
    if not flapping:
        return True
    last = recent(replacements, now)
    return not last or now - datetime.fromisoformat(last[-1]) >= FLAP_BACKOFF


def flapping_reason(count: int) -> str:
    return f"flapping: replaced {count} times in {int(FLAP_WINDOW.total_seconds() // 60)} minutes"
