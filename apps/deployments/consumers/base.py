"""The base of every live stream: close codes, authorization and `LiveConsumer`.

Every consumer accepts first and then authorizes (so browsers see the close code), looks
its object up only through `visible_to`, and re-checks the authorization every few
seconds so a logout, a revoked token or a removed membership ends the stream. A new
stream subclasses `LiveConsumer` and writes `parse`, `begin` and `release`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from importlib import import_module
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import models

from apps.accounts.channels_auth import NO_CHANNEL_LAYER, authenticate, hash_matches, socket_db
from apps.accounts.models import ApiToken
from apps.core.roles import Role
from apps.deployments import live_limits
from apps.deployments.models import Container, Service, Stack
from apps.hosts.engine import EngineError

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
#: Like HTTP 405: this stream is not offered for this object (a Swarm task's shell or
#: stats on a node whose engine Berth cannot reach: apps/deployments/swarm_tasks.py).
CLOSE_UNAVAILABLE = 4405
CLOSE_IDLE = 4408
CLOSE_NOT_RUNNING = 4409
CLOSE_ACK_TIMEOUT = 4429
#: The user's own bound (BERTH_LIVE_*_PER_USER); like HTTP 429, which the shell's ack
#: timeout already took.
CLOSE_USER_BUSY = 4430
CLOSE_ENGINE = 4502
CLOSE_BUSY = 4503


class BadRequestError(ValueError):
    """A query parameter or message the client must fix (close 4400)."""


# --- authorization (sync, run through database_sync_to_async) --------------------------


def _session_valid(scope: dict[str, Any], user: Any) -> bool:
    """The session the socket opened with still exists, still names this user, and was
    made with the user's current password.

    Django checks the session's password hash on every HTTP request (`auth.get_user`);
    a socket outlives its request, so the hash is checked here on every re-check: a
    password change or reset anywhere ends the other sessions' sockets as it ends their
    pages. (The session that changed the password gets a new key, so its old sockets
    end too.) The check has no side effects, unlike `get_user`, which flushes or
    cycles the session: a browser tab must not be logged out by its websocket.
    """
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    if str(store.get(SESSION_KEY)) != str(user.pk):
        return False
    return hash_matches(store, user)


def authorize(
    scope: dict[str, Any], model: type[models.Model], pk: int, role: str
) -> tuple[int | None, Any]:
    """(close code or None, the object) for the handshake's credentials, read now.

    Authentication happens here, in the same database call as the access check: the
    session or token and its user are read once (`authenticate`), and the socket's
    `user` and `token` are set in the scope for the re-checks and the audit.
    """
    user, token = authenticate(scope)
    if user is None or not user.is_active:
        return CLOSE_UNAUTHENTICATED, None
    scope["user"], scope["token"] = user, token
    visible = model.objects.visible_to(user, Role.VIEWER, token=token)
    # No ordering: the models' default ones span relations, and compiling them cost
    # more CPU than the query itself (a container's reached its tenant's environment).
    found = list(_with_relations(visible, model).filter(pk=pk).order_by()[:1])
    if not found:
        return CLOSE_NOT_FOUND, None
    if role != Role.VIEWER:
        allowed = model.objects.visible_to(user, role, token=token).filter(pk=pk).exists()
        if not allowed:
            return CLOSE_FORBIDDEN, None
    return None, found[0]


class Access(NamedTuple):
    """What an open socket was allowed: whose, through which session or token, to what."""

    user_id: int
    token_id: int | None
    scope: dict[str, Any]
    model: type[models.Model]
    pk: int
    role: str


def recheck(entries: list[Access]) -> list[int | None]:
    """`authorize` for many open sockets at once: each one's close code, or None.

    One socket re-checked on its own cost four or five queries every few seconds (200
    sockets: 400 a second, a quarter of a core in daphne doing nothing else). Together:
    one query for the users, one for the tokens, one per distinct session, and one per
    (user, token, kind of object, role) for the objects still visible, whatever the
    number of sockets. A lost object reads as 4403 here, as in the per-socket check.
    """
    user_ids = {e.user_id for e in entries}
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=user_ids, is_active=True)}
    token_ids = {e.token_id for e in entries if e.token_id is not None}
    tokens = (
        {t.pk: t for t in ApiToken.objects.usable().filter(pk__in=token_ids)} if token_ids else {}
    )
    sessions: dict[tuple[str, int], bool] = {}
    wanted: dict[tuple[int, int | None, type[models.Model], str], set[int]] = {}
    codes: list[int | None] = []
    for entry in entries:
        user = users.get(entry.user_id)
        code = None
        if user is None:
            code = CLOSE_UNAUTHENTICATED
        elif entry.token_id is not None:
            if entry.token_id not in tokens:
                code = CLOSE_UNAUTHENTICATED
        else:
            key = (getattr(entry.scope.get("session"), "session_key", None) or "", user.pk)
            if key not in sessions:
                sessions[key] = _session_valid(entry.scope, user)
            if not sessions[key]:
                code = CLOSE_UNAUTHENTICATED
        if code is None:
            group = (entry.user_id, entry.token_id, entry.model, entry.role)
            wanted.setdefault(group, set()).add(entry.pk)
        codes.append(code)
    visible: dict[tuple[int, int | None, type[models.Model], str], set[int]] = {}
    for group, pks in wanted.items():
        user_id, token_id, model, role = group
        token = tokens.get(token_id) if token_id is not None else None
        objects = model.objects.visible_to(users[user_id], role, token=token)
        visible[group] = set(objects.filter(pk__in=pks).values_list("pk", flat=True))
    for index, entry in enumerate(entries):
        if codes[index] is None:
            group = (entry.user_id, entry.token_id, entry.model, entry.role)
            if entry.pk not in visible[group]:
                codes[index] = CLOSE_FORBIDDEN
    return codes


def _with_relations(queryset: models.QuerySet, model: type[models.Model]) -> models.QuerySet:
    if model is Container:
        return queryset.select_related(
            "host", "node", "stack__tenant", "stack__environment", "service"
        )
    if model is Service:
        return queryset.select_related("stack")
    return queryset


def _query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
    return {key: values[-1] for key, values in parsed.items()}


# --- the re-check of every open socket -------------------------------------------------


class Watch:
    """The open sockets of one event loop, their access re-checked together.

    Every BERTH_LIVE_RECHECK_SECONDS one task runs `recheck` over all of them (one
    thread hop and a fixed number of queries), and closes those whose access ended, so
    a logout, a revoked token or a removed membership ends the stream within seconds.
    The task ends when the last socket closes; the next socket starts it again.
    """

    def __init__(self) -> None:
        self.consumers: dict[LiveConsumer, None] = {}
        self.task: asyncio.Task | None = None

    def add(self, consumer: LiveConsumer) -> None:
        self.consumers[consumer] = None
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self.run())

    def discard(self, consumer: LiveConsumer) -> None:
        self.consumers.pop(consumer, None)

    async def run(self) -> None:
        while self.consumers:
            await asyncio.sleep(settings.BERTH_LIVE_RECHECK_SECONDS)
            watched = [c for c in self.consumers if not c.closed]
            if not watched:
                continue
            try:
                codes = await socket_db(recheck)([c.access for c in watched])
            except Exception:  # noqa: BLE001 - the database blinking must not end a stream
                log.warning("re-checking access of live streams failed", exc_info=True)
                continue
            for consumer, code in zip(watched, codes, strict=True):
                if code is not None and not consumer.closed:
                    consumer.spawn(consumer.fail(code, "Access to this stream was revoked."))


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watch] = weakref.WeakKeyDictionary()


def watch() -> Watch:
    """The running loop's `Watch` (one per loop: the tests run each scenario in its own)."""
    loop = asyncio.get_running_loop()
    current = _watches.get(loop)
    if current is None:
        current = _watches[loop] = Watch()
    return current


# --- the base consumer -----------------------------------------------------------------


class LiveConsumer(AsyncWebsocketConsumer):
    """Accept, authorize, start the stream, keep re-checking; subclasses stream."""

    model: type[models.Model] = Stack
    role: str = Role.VIEWER
    # Not configured, so no channel layer: only the events socket gets channel messages.
    # A consumer that listens on the layer also dies (close 1011) on any Redis read error
    # of its receive loop; a shell, a log or stats stream must not depend on Redis.
    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        self.tasks: list[asyncio.Task] = []
        self.closed = False
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        await self.accept()
        try:
            self.params: dict[str, Any] = self.parse(_query(self.scope))
            bad = ""
        except BadRequestError as exc:
            self.params, bad = {}, str(exc)
        await self.before_access()
        code, obj, self.prepared = await socket_db(self.open_access)(bool(bad))
        if code is not None:
            await self.shutdown(code)
            return
        self.obj = obj
        self.user_id = self.scope["user"].pk
        token = self.scope.get("token")
        self.access = Access(
            self.user_id, token.pk if token else None, self.scope, self.model, self.pk, self.role
        )
        if not live_limits.SOCKETS.take(self.user_id):
            limit = live_limits.SOCKETS.limit
            await self.fail(CLOSE_USER_BUSY, live_limits.SOCKETS_BUSY.format(limit=limit))
            return
        self.counted = True
        if bad:
            await self.fail(CLOSE_BAD_REQUEST, bad)
            return
        watch().add(self)
        try:
            await self.begin()
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))

    def open_access(self, bad_request: bool) -> tuple[int | None, Any, Any]:
        """In one database call (one thread hop, one pooled connection): authentication,
        the access check, and the stream's own first reads (`prepare`)."""
        code, obj = authorize(self.scope, self.model, self.pk, self.role)
        if code is not None or bad_request:
            return code, obj, None
        return None, obj, self.prepare(obj)

    async def before_access(self) -> None:
        """Work that must precede the stream's first reads (the events socket joins its
        group first, so no event falls between its catch-up and the live ones)."""

    def prepare(self, obj: Any) -> Any:
        """Sync, in the access check's database call: what `begin` needs from the
        database (`self.prepared`)."""
        return None

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        return {}

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `close_old_connections` before every message.

        Channels runs that in the process's one thread-sensitive thread before each
        handler: every ack, every channel-layer event of every socket queued behind every
        other socket's database work there (200 sockets: a stack event reached the last
        of its sockets after a hundred hops). The consumers here touch the database only
        through `socket_db`, which closes connections before and after each call, so
        there is never a connection of theirs to close in the loop's thread.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def begin(self) -> None:
        raise NotImplementedError

    async def lease(self, count: int = 1, server: bool = True) -> live_limits.StreamLease | None:
        """Engine streams for this socket under the user's and (unless shared, `server`
        False) the server's bounds; on refusal the socket is closed (4430 for the user's
        bound, 4503 for the server's)."""
        lease, reason = live_limits.StreamLease.take(self.user_id, count, server)
        if lease is None:
            code = CLOSE_BUSY if reason == live_limits.SERVER_BUSY else CLOSE_USER_BUSY
            await self.fail(code, reason)
        return lease

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(content))

    async def fail(self, code: int, message: str) -> None:
        await self.send_json({"type": "error", "message": message})
        await self.shutdown(code)

    async def shutdown(self, code: int = 1000) -> None:
        """Close the socket (once) and stop everything it started."""
        if self.closed:
            return
        await self.close(code)
        self.closed = True
        await self.cleanup()

    async def cleanup(self) -> None:
        """Stop the tasks, then release the streams exactly once, even if cancelled."""
        watch().discard(self)
        if getattr(self, "counted", False):
            self.counted = False
            live_limits.SOCKETS.give(self.user_id)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if getattr(self, "releasing", None) is None:
            self.releasing = asyncio.ensure_future(self.release())
        await asyncio.shield(self.releasing)

    async def release(self) -> None:
        """Close what the stream opened (docker responses, exec sessions, slots)."""

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if hasattr(self, "tasks"):
            await self.cleanup()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if text_data is None:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if isinstance(message, dict):
            await self.on_message(message)

    async def on_message(self, message: dict[str, Any]) -> None:
        """A JSON message from the client; unknown ones are ignored."""
