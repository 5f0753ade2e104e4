"""Websocket authentication: the session cookie, or an API token for scripts.

A token is read from the `Authorization: Bearer` header or the `token` query parameter.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from apps.accounts.models import find_token


@database_sync_to_async
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


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        raw = _raw_token(scope)
        scope = dict(scope)
        scope["token"] = None
        if raw:
            user, token = await _token_user(raw)
            if user is not None:
                scope["user"] = user
                scope["token"] = token
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddlewareStack(inner):  # noqa: N802 - mirrors Channels' naming
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
