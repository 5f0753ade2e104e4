"""Checks of the services Berth depends on, shown as banners instead of tracebacks."""

import time

import redis
from django.conf import settings

_CACHE: dict[str, tuple[float, list[str]]] = {}
CHECK_INTERVAL_SECONDS = 10


def redis_error() -> str | None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {settings.REDIS_URL} does not answer ({exc}). Background work is paused."
    return None


def engine_errors() -> list[str]:
    from apps.hosts.models import Host

    return [
        f"Host {host.name} is unreachable: {host.last_error or 'no answer'}"
        for host in Host.objects.filter(state=Host.State.UNREACHABLE)
    ]


def service_banners() -> list[str]:
    """Problems worth a banner, checked at most every few seconds per process."""
    now = time.monotonic()
    cached = _CACHE.get("banners")
    if cached and now - cached[0] < CHECK_INTERVAL_SECONDS:
        return cached[1]
    banners = [msg for msg in [redis_error()] if msg] + engine_errors()
    _CACHE["banners"] = (now, banners)
    return banners
