"""IANA time zone names, checked against zoneinfo: a preference or cookie naming no
zone is ignored rather than raising deep inside a page."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def available_zones() -> frozenset[str]:
    """Every zone name this system's tz database knows."""
    return frozenset(zoneinfo.available_timezones())


def zone_or_none(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The ZoneInfo for `name`, or None for a blank or unknown name."""
    if not name or name not in available_zones():
        return None
    return zoneinfo.ZoneInfo(name)


def zone_choices() -> list[tuple[str, str]]:
    """(name, name) pairs sorted for a select, UTC first."""
    names = sorted(n for n in available_zones() if "/" in n and not n.startswith("Etc/"))
    return [("UTC", "UTC"), *((n, n) for n in names)]
