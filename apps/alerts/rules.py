"""The pure parts of alerting (no database): what each rule kind reads, the metrics a
threshold may name, the comparison, the state machine of one alert, the back-off of a
delivery and the webhook signature. The evaluation and the delivery code call these;
their unit tests call them with plain data.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

#: The rule fields each kind reads (besides name, scope and channels); the form and the
#: serializer show and accept these, the service clears the others.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "metric": ("metric", "comparison", "threshold", "duration_seconds"),
    "restarts": ("threshold", "window_seconds", "duration_seconds"),
    "flapping": ("threshold", "window_seconds"),
    "host_unreachable": ("duration_seconds",),
    "registry_quota": ("threshold", "duration_seconds"),
    "hot_image": ("window_seconds",),
    "certificate": ("threshold",),
    "disk_full": ("threshold", "duration_seconds"),
}

#: What the threshold means, per kind (shown as help on the form and in the README).
THRESHOLD_HELP: dict[str, str] = {
    "metric": "the metric's value",
    "restarts": "restarts of one container within the window (at least this many)",
    "flapping": "health changes of one container within the window (at least this many)",
    "registry_quota": "percent of the registry storage quota used (at least)",
    "certificate": "days left before the certificate's end (at most)",
    "disk_full": "percent of a host's data-root disk, or of its inodes, used (at least)",
}


@dataclass(frozen=True)
class AlertMetric:
    """A figure a threshold rule may watch: the series kind it comes from, its unit, and
    whether it is a rate (the difference of the two newest rows of a counter)."""

    label: str
    subject: str  # "container" or "route"
    unit: str


METRICS: dict[str, AlertMetric] = {
    "cpu_percent": AlertMetric("CPU (% of one CPU)", "container", "%"),
    "memory_percent": AlertMetric("Memory (% of its limit)", "container", "%"),
    "memory_bytes": AlertMetric("Memory in use (bytes)", "container", "B"),
    "requests_rate": AlertMetric("Requests per second", "route", "/s"),
    "errors_rate": AlertMetric("5xx answers per second", "route", "/s"),
    "error_percent": AlertMetric("5xx answers (% of requests)", "route", "%"),
    "latency_ms": AlertMetric("Average response time (ms)", "route", "ms"),
}

COMPARISONS = {
    "gt": lambda value, limit: value > limit,
    "ge": lambda value, limit: value >= limit,
    "lt": lambda value, limit: value < limit,
    "le": lambda value, limit: value <= limit,
}
SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def holds(comparison: str, value: float | None, threshold: float) -> bool:
    """Whether `value comparison threshold`; a value not measured holds nothing."""
    return value is not None and COMPARISONS[comparison](value, threshold)


def next_state(
    current: str | None, condition: bool, started_at: datetime | None, now: datetime, duration: int
) -> str | None:
    """The state of a rule's alert on one subject after a pass saw `condition`.

    None is "no open alert". A condition true opens a pending alert (firing at once
    with no duration), which fires once it has held `duration` seconds since it began;
    a firing alert whose condition is false resolves; a pending one is dropped (it never
    fired, so there is nothing to resolve and nobody was told)."""
    if not condition:
        return "resolved" if current == "firing" else None
    if current == "firing":
        return "firing"
    since = started_at if current == "pending" and started_at is not None else now
    return "firing" if now - since >= timedelta(seconds=duration) else "pending"


def changes(values: list[int]) -> int:
    """How many times consecutive readings differ (health flapping)."""
    return sum(1 for before, after in zip(values, values[1:], strict=False) if before != after)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base, 2 base, 4
    base ... at most `cap`."""
    return min(base * (2 ** max(attempts - 1, 0)), cap)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: the receiver recomputes
    it with the shared secret, and refuses an old timestamp (a replayed request)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes, header: str, timestamp: str, body: bytes, now: float, tolerance: int = 300
) -> bool:
    """What a receiver does (documented in the README, used by the tests)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, sent, body), header)
