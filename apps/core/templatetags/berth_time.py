"""One way to show a time: `{{ value|when }}` renders
`<time datetime="ISO" title="absolute time in the user's zone">3 minutes ago</time>`.

Why one filter: pages mixed `naturaltime`, `|date:"..."` and raw values, so the same
moment read differently from page to page. The absolute text names the zone it is in
(the user's preference, else the browser's zone sent as a cookie, else the server's),
and static/js/berth.js applies the same wording in the browser, keeping the relative
text fresh. `relative_text` and `absolute_text` are the single definitions; berth.js
mirrors them (`Berth.when`).
"""

from __future__ import annotations

import datetime as dt
import math

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()

MINUTE, HOUR, DAY = 60, 3600, 86400
# (below this many seconds, divisor or None for "1 unit", unit)
_STEPS = (
    (90, None, "minute"),
    (45 * MINUTE, MINUTE, "minute"),
    (90 * MINUTE, None, "hour"),
    (22 * HOUR, HOUR, "hour"),
    (36 * HOUR, None, "day"),
    (26 * DAY, DAY, "day"),
    (45 * DAY, None, "month"),
    (320 * DAY, 30 * DAY, "month"),
    (548 * DAY, None, "year"),
    (math.inf, 365 * DAY, "year"),
)


def relative_text(value: dt.datetime, now: dt.datetime | None = None) -> str:
    """ "3 minutes ago" / "in 2 hours"; under 45 seconds "just now" / "in a few seconds"."""
    now = now or timezone.now()
    seconds = (now - value).total_seconds()
    future, span = seconds < 0, abs(seconds)
    if span < 45:
        return "in a few seconds" if future else "just now"
    divisor, unit = next((d, u) for limit, d, u in _STEPS if span < limit)
    count = 1 if divisor is None else math.floor(span / divisor + 0.5)
    text = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {text}" if future else f"{text} ago"


def zone_name(zone: dt.tzinfo) -> str:
    """The IANA name of a zone ("Europe/Paris"), as the browser's Intl names it."""
    return getattr(zone, "key", None) or str(zone)


def absolute_text(value: dt.datetime, zone: dt.tzinfo | None = None) -> str:
    """ "6 Dec 2026, 06:47:18 (Europe/Paris)": the time in `zone` (default: the active one)."""
    zone = zone or timezone.get_current_timezone()
    local = value.astimezone(zone)
    return f"{local.day} {local:%b %Y, %H:%M:%S} ({zone_name(zone)})"


def _as_datetime(value: object) -> dt.datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12), tzinfo=timezone.get_current_timezone())
    if not isinstance(value, dt.datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return value


@register.filter(is_safe=True)
def when(value: object, empty: str = "—") -> str:
    """A time as `<time>` with relative text and the absolute time on hover; a missing
    time (None, "") as `empty` in muted text ("never", "unknown")."""
    moment = _as_datetime(value)
    if moment is None:
        return format_html('<span class="muted">{}</span>', empty)
    return format_html(
        '<time datetime="{}" title="{}" data-when>{}</time>',
        moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        absolute_text(moment),
        relative_text(moment),
    )


@register.simple_tag(takes_context=True)
def preferred_time_zone(context: template.Context) -> str:
    """The zone the user chose in their profile, or "" (then the browser's zone is used)."""
    request = context.get("request")
    return getattr(request, "preferred_time_zone", "") or ""
