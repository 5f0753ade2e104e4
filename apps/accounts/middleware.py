"""Activate the zone times are written in, for each request.

The user's preference (Preferences.time_zone) comes first; without one, the zone the
browser reported in the `berth_tz` cookie (set by static/js/berth.js); else the server's
TIME_ZONE. A name the tz database does not know is ignored."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apps.core.timezones import zone_or_none

BROWSER_ZONE_COOKIE = "berth_tz"


def preferred_zone_name(user) -> str:
    """The zone the user chose, or ""."""
    if not getattr(user, "is_authenticated", False):
        return ""
    from apps.accounts.models import Preferences

    found = Preferences.objects.filter(user_id=user.pk).values_list("time_zone", flat=True)
    return found.first() or ""


class TimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        preferred = preferred_zone_name(getattr(request, "user", None))
        request.preferred_time_zone = preferred if zone_or_none(preferred) else ""
        zone = zone_or_none(request.preferred_time_zone) or zone_or_none(
            unquote(request.COOKIES.get(BROWSER_ZONE_COOKIE, ""))
        )
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
