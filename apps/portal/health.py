"""Checks of the services Berth depends on, shown as banners instead of tracebacks.

Banners never carry credentials: every message goes through `redact`, which keeps a
URL's scheme, host, port and path but drops its user name and password, hides
password/secret/token query parameters, every secret value in the settings, and any
long random-looking string (API tokens, registry secrets, keys).
"""

import re
import time
from urllib.parse import urlsplit

import redis
from django.conf import settings

from apps.hosts.models import Host

HIDDEN = "***"
# scheme://user:password@host -> scheme://***@host (also user-only and password-only forms)
URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")
SECRET_PARAMS = re.compile(
    r"(?P<name>\b[\w.-]*(?:password|passwd|pwd|secret|token|key|auth)[\w.-]*\s*=\s*)"
    r"(?P<value>[^\s&;,'\"]+)",
    re.IGNORECASE,
)

# 32+ URL-safe characters mixing upper case, lower case and digits: generated secrets
# (secrets.token_urlsafe, Berth API tokens). Hex digests and ids are lower case only.
RANDOM_LOOKING = re.compile(r"(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]{32,}")
SECRET_SETTING_WORDS = ("SECRET", "PASSWORD", "TOKEN", "_KEY")


def _setting_secrets() -> set[str]:
    """Values of settings whose names say they are secret, and database passwords."""
    values = [
        getattr(settings, name)
        for name in dir(settings)
        if name.isupper() and any(word in name for word in SECRET_SETTING_WORDS)
    ]
    values += [db.get("PASSWORD") for db in settings.DATABASES.values()]
    for url in (getattr(settings, "REDIS_URL", ""), getattr(settings, "CELERY_BROKER_URL", "")):
        try:
            values.append(urlsplit(url or "").password)
        except ValueError:
            continue
    return {value for value in values if isinstance(value, str) and len(value) >= 4}


def redact(text: str) -> str:
    """`text` with credentials removed: what a banner (or any page) may show."""
    for secret in sorted(_setting_secrets(), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    text = URL_USERINFO.sub(rf"\g<scheme>{HIDDEN}@", text)
    text = SECRET_PARAMS.sub(rf"\g<name>{HIDDEN}", text)
    return RANDOM_LOOKING.sub(HIDDEN, text)


_CACHE: dict[str, tuple[float, list[str]]] = {}
CHECK_INTERVAL_SECONDS = 10


def redis_error() -> str | None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
        client.ping()
    except redis.RedisError as exc:
        return redact(
            f"Redis at {settings.REDIS_URL} does not answer ({exc}). Background work is paused."
        )
    return None


def engine_errors() -> list[str]:
    return [
        redact(f"Host {host.name} is unreachable: {host.last_error or 'no answer'}")
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
