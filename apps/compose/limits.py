"""Bounds on what a compose file may ask for, against hostile or accidental giants.

Defaults are generous for real stacks (the biggest built-in template has a handful of
services) and small enough that parsing a worst-case file stays well under a second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# The default of BERTH_MAX_STOP_GRACE_SECONDS: stopping a container waits out its grace
# period while holding a worker, so a tenant may not ask for days.
MAX_STOP_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class Limits:
    """Every bound in one place so an environment could tune them later."""

    max_bytes: int = 256 * 1024
    max_depth: int = 32
    max_nodes: int = 100_000
    max_services: int = 50
    max_ports: int = 100
    max_volumes: int = 100
    max_items: int = 1000
    max_string: int = 16 * 1024
    max_key: int = 256
    max_replicas: int = 100
    max_interpolated: int = 4 * 1024 * 1024
    max_stop_grace: float = MAX_STOP_GRACE_SECONDS


DEFAULT_LIMITS = Limits()


def platform_limits() -> Limits:
    """DEFAULT_LIMITS with what the platform's settings configure (the longest stop grace
    period). Django is imported here only, so the parser stays usable without it."""
    try:
        from django.conf import settings

        grace = getattr(settings, "BERTH_MAX_STOP_GRACE_SECONDS", None)
    except ImportError:  # pragma: no cover - the parser used outside Django
        grace = None
    if grace is None:
        return DEFAULT_LIMITS
    return dataclasses.replace(DEFAULT_LIMITS, max_stop_grace=float(grace))
