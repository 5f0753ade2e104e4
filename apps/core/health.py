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


def _cached(name: str, check) -> list[str]:
    now = time.monotonic()
    cached = _CACHE.get(name)
    if cached and now - cached[0] < CHECK_INTERVAL_SECONDS:
        return cached[1]
    result = check()
    _CACHE[name] = (now, result)
    return result


def service_banners(include_hosts: bool = False) -> list[str]:
    """Problems worth a banner, checked at most every few seconds per process.

    Host problems name endpoints, so only platform admins see them; tenants see the
    effect on their own stacks instead.
    """
    banners = _cached("redis", lambda: [msg for msg in [redis_error()] if msg])
    if include_hosts:
        banners = banners + _cached("hosts", engine_errors)
    return banners
