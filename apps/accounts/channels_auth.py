"""Websocket authentication and origin check: the session cookie, or an API token.

A token is read from the `Authorization: Bearer` header or the `token` query parameter.

The origin check (`PortalOriginValidator`) wraps every websocket route (paas/asgi.py).
A browser attaches the session cookie to a websocket opened by ANY page, so the
`Origin` header is the only thing telling the portal's own pages from a page served by
a tenant's container on another port of the same host. It is compared as a whole
origin (scheme, host and port) with the portal's own origins; Channels'
`AllowedHostsOriginValidator` compared host names only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from channels.db import DatabaseSyncToAsync
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.models import AnonymousUser
from django.http.request import is_same_domain, split_domain_port, validate_host
from django.utils.crypto import constant_time_compare

from apps.accounts.models import find_token

DEFAULT_PORTS = {"http": 80, "https": 443}
#: An alias missing from CHANNEL_LAYERS: a consumer naming it gets no channel layer.
NO_CHANNEL_LAYER = "berth-none"


#: The threads where websockets do their database work (BERTH_LIVE_DB_THREADS), kept
#: for the process's life like the one thread they replace: each keeps at most one
#: database connection, so they never hold more than this many of the pool's.
_DB_THREADS = ThreadPoolExecutor(
    max_workers=settings.BERTH_LIVE_DB_THREADS, thread_name_prefix="berth-live-db"
)


def socket_db(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`database_sync_to_async` for websocket code, on `_DB_THREADS`.

    Channels' own helper is thread-sensitive: outside an HTTP request (a websocket's
    whole life) every call of every socket of the process runs in ONE shared thread.
    With 200 sockets opening at once (a session or token lookup, then an access check
    each) the last waited more than daphne's 5 s handshake timeout and all were dropped.
    These helpers hold no thread-bound state and close their connection after each call
    (as `DatabaseSyncToAsync` does), so any of a few threads may run them.
    """
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_DB_THREADS)


def session_user(session: Any) -> Any:
    """The user a session is signed in as, or None; reads the session and the user.

    What Django's `auth.get_user` does for a page (the session's backend, the user, the
    password hash the session was made with), without its side effects: a socket must
    not flush or cycle the browser's session. A hash that no longer matches (a password
    change or reset) reads as signed out, as it does for a page.
    """
    if session is None or not session.session_key:
        return None
    try:
        user_id = session[SESSION_KEY]
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None or not hash_matches(session, user):
        return None
    return user


def hash_matches(session: Any, user: Any) -> bool:
    """The session was made with the user's current password (or a fallback key's)."""
    signed = session.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return bool(signed) and any(constant_time_compare(signed, h) for h in hashes)


def authenticate(scope: dict[str, Any]) -> tuple[Any, Any]:
    """(user, token) of a handshake, or (None, None); sync, one or two queries.

    An API token wins over the session cookie (a script's token is what it means); an
    unknown, revoked or expired token falls back to the session, as it did when the
    two were resolved by separate middlewares. The token is looked up once: when the
    origin check already needed it (no Origin header), its answer is reused.
    """
    if scope.get("token") is not None:
        return scope["user"], scope["token"]
    raw = scope.get("raw_token")
    if raw and not scope.get("token_checked"):
        token = find_token(raw)
        if token is not None:
            return token.user, token
    return session_user(scope.get("session")), None


class HandshakeMiddleware(BaseMiddleware):
    """Reads a handshake's credentials without touching the database.

    The session (named by the cookie, not loaded) and the raw API token go into the
    scope; the consumer resolves them in the same database call as its access check
    (`authenticate`, then `visible_to`): one thread hop and one pooled connection per
    handshake. Resolving them here, in middlewares of their own, cost three hops and
    two more queries each (the access check read the user and token again), about a
    third of a handshake's CPU; 200 sockets opened at once then passed daphne's 5 s
    handshake timeout. Only a handshake without an Origin header needs its token
    before the origin check (`origin_allowed`), so only that one is looked up here.
    """

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        key = (scope.get("cookies") or {}).get(settings.SESSION_COOKIE_NAME)
        scope["session"] = self.session_store(session_key=key) if key else None
        scope["user"] = AnonymousUser()
        scope["token"] = None
        scope["raw_token"] = _raw_token(scope)
        if scope["raw_token"] and _header(scope, b"origin") is None:
            user, token = await _token_user(scope["raw_token"])
            scope["token_checked"] = True
            if user is not None:
                scope["user"], scope["token"] = user, token
        return await super().__call__(scope, receive, send)


@socket_db
def _token_user(raw_key: str):
    token = find_token(raw_key)
    if token is None:
        return None, None
    return token.user, token


def _raw_token(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() in ("bearer", "token"):
                return parts[1]
    query = parse_qs(scope.get("query_string", b"").decode())
    return (query.get("token") or [None])[0]


# --- origins ---------------------------------------------------------------------------


class Origin(NamedTuple):
    """An origin as browsers compare them: scheme, host (lower case) and port."""

    scheme: str
    host: str
    port: int


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as an Origin; None for anything else (`null`, a path...).

    A host starting with `*.` is kept as written: it is a pattern (see `_matches`).
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.username:
        return None
    wildcard = parts.netloc.startswith("*.")
    host, _ = split_domain_port(parts.netloc.removeprefix("*") if wildcard else parts.netloc)
    if not host:
        return None
    return Origin(scheme, f"*{host}" if wildcard else host, port or DEFAULT_PORTS[scheme])


def portal_origins() -> list[Origin]:
    """The origins the portal's pages are served from, by configuration:
    BERTH_PUBLIC_URL and DJANGO_CSRF_TRUSTED_ORIGINS (`https://*.example.com` allowed)."""
    configured = [settings.BERTH_PUBLIC_URL, *settings.CSRF_TRUSTED_ORIGINS]
    return [origin for origin in map(parse_origin, configured) if origin is not None]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def request_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin the socket was addressed to (scheme + Host), as Django's `is_secure()`
    and `get_host()` would see it; None when the Host is not in ALLOWED_HOSTS."""
    host = _header(scope, b"host") or ""
    if settings.USE_X_FORWARDED_HOST:
        host = (_header(scope, b"x-forwarded-host") or "").split(",")[0].strip() or host
    domain, port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed):
        return None
    secure = scope.get("scheme") == "wss"
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name = proxy[0].removeprefix("HTTP_").lower().replace("_", "-").encode()
        value = _header(scope, name)
        if value is not None:
            secure = value.split(",")[0].strip() == proxy[1]
    scheme = "https" if secure else "http"
    return Origin(scheme, domain, int(port) if port else DEFAULT_PORTS[scheme])


def _matches(origin: Origin, allowed: Origin) -> bool:
    if (origin.scheme, origin.port) != (allowed.scheme, allowed.port):
        return False
    if allowed.host.startswith("*."):
        return is_same_domain(origin.host, allowed.host[1:])
    return origin.host == allowed.host


def origin_allowed(scope: dict[str, Any]) -> bool:
    """May this websocket handshake go on, judged by its Origin header?

    Allowed: the request's own origin (same-origin), BERTH_PUBLIC_URL, or one of
    CSRF_TRUSTED_ORIGINS; scheme, host and port must all match. `null` and anything
    malformed are refused. A missing header is allowed only to a socket authenticated
    by an API token (scripts); browsers always send one, so a cookie alone never
    opens a socket without it.
    """
    raw = _header(scope, b"origin")
    if raw is None:
        return scope.get("token") is not None
    origin = parse_origin(raw)
    if origin is None:
        return False
    own = request_origin(scope)
    candidates = [own] if own is not None else []
    return any(_matches(origin, allowed) for allowed in candidates + portal_origins())


class OriginDenier(WebsocketDenier):
    """Channels' denier without a channel layer: a refused handshake must not open a
    Redis receive that lives until the client goes (one per refused attempt)."""

    channel_layer_alias = NO_CHANNEL_LAYER


class PortalOriginValidator:
    """Refuse (HTTP 403 at the handshake) a websocket from a page that is not the portal's.

    Sits inside the authentication middleware, so it knows whether an API token
    authenticated the socket (see `origin_allowed` for a missing Origin header).
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("PortalOriginValidator only guards websocket connections.")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await OriginDenier()(scope, receive, send)


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - mirrors Channels' naming
    """Cookies, the handshake's credentials (unresolved: see `HandshakeMiddleware`), the
    origin check, then `inner` (the routes)."""
    return CookieMiddleware(HandshakeMiddleware(PortalOriginValidator(inner)))
