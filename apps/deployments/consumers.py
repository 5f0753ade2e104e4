"""Websocket consumers of live operations: stack events, logs, shells and stats.

The protocol is documented in WEBSOCKETS.md next to this file. Every consumer accepts
first and then authorizes (so browsers see the close code), looks its object up only
through `visible_to`, and re-checks the authorization every few seconds so a logout, a
revoked token or a removed membership ends the stream. Docker is reached only through
apps.hosts.engine.streams, read in its bounded thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import models
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from apps.accounts.models import ApiToken
from apps.activity.services import record_event
from apps.deployments import live, live_limits
from apps.deployments.models import Container, Service, Stack
from apps.hosts.engine import EngineError, get_engine, streams
from apps.tenants.roles import Role

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_NOT_RUNNING = 4409
CLOSE_ACK_TIMEOUT = 4429
#: The user's own bound (BERTH_LIVE_*_PER_USER); like HTTP 429, which the shell's ack
#: timeout already took.
CLOSE_USER_BUSY = 4430
CLOSE_ENGINE = 4502
CLOSE_BUSY = 4503

LOG_WINDOW = 16
LOG_BATCH = 500
LOG_BUFFER = 10000
MERGE_DELAY = 0.25
MAX_TRANSCRIPT = 10 * 1024 * 1024
#: Shell output a client may have unacknowledged (BERTH_SHELL_WINDOW_BYTES overrides it).
SHELL_WINDOW = 1024 * 1024
#: How long a full window may wait for an ack before the socket is closed with 4429.
SHELL_ACK_SECONDS = 120
SHELLS = ("/bin/sh", "/bin/bash", "/bin/ash", "/bin/zsh", "sh", "bash", "ash")


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
    signed = store.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return bool(signed) and any(constant_time_compare(signed, h) for h in hashes)


def authorize(
    scope: dict[str, Any], model: type[models.Model], pk: int, role: str
) -> tuple[int | None, Any]:
    """(close code or None, the object) for the socket's user, token and session now."""
    user, token = scope.get("user"), scope.get("token")
    if user is None or not user.is_authenticated:
        return CLOSE_UNAUTHENTICATED, None
    user = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if user is None:
        return CLOSE_UNAUTHENTICATED, None
    if token is not None:
        token = ApiToken.objects.usable().filter(pk=token.pk).first()
        if token is None:
            return CLOSE_UNAUTHENTICATED, None
    elif not _session_valid(scope, user):
        return CLOSE_UNAUTHENTICATED, None
    visible = model.objects.visible_to(user, Role.VIEWER, token=token)
    obj = _with_relations(visible, model).filter(pk=pk).first()
    if obj is None:
        return CLOSE_NOT_FOUND, None
    if role != Role.VIEWER:
        allowed = model.objects.visible_to(user, role, token=token).filter(pk=pk).exists()
        if not allowed:
            return CLOSE_FORBIDDEN, None
    return None, obj


def _with_relations(queryset: models.QuerySet, model: type[models.Model]) -> models.QuerySet:
    if model is Container:
        return queryset.select_related("host", "stack__tenant", "stack__environment", "service")
    if model is Service:
        return queryset.select_related("stack")
    return queryset


def _query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
    return {key: values[-1] for key, values in parsed.items()}


class LiveConsumer(AsyncWebsocketConsumer):
    """Accept, authorize, start the stream, keep re-checking; subclasses stream."""

    model: type[models.Model] = Stack
    role: str = Role.VIEWER
    # Not configured, so no channel layer: only the events socket gets channel messages.
    # A consumer that listens on the layer also dies (close 1011) on any Redis read error
    # of its receive loop; a shell, a log or stats stream must not depend on Redis.
    channel_layer_alias = "berth-none"

    async def connect(self) -> None:
        self.tasks: list[asyncio.Task] = []
        self.closed = False
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        await self.accept()
        code, obj = await database_sync_to_async(authorize)(
            self.scope, self.model, self.pk, self.role
        )
        if code is not None:
            await self.shutdown(code)
            return
        self.obj = obj
        self.user_id = self.scope["user"].pk
        if not live_limits.SOCKETS.take(self.user_id):
            limit = live_limits.SOCKETS.limit
            await self.fail(CLOSE_USER_BUSY, live_limits.SOCKETS_BUSY.format(limit=limit))
            return
        self.counted = True
        try:
            self.params = self.parse(_query(self.scope))
        except BadRequestError as exc:
            await self.fail(CLOSE_BAD_REQUEST, str(exc))
            return
        self.spawn(self.guard())
        try:
            await self.begin()
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        return {}

    async def begin(self) -> None:
        raise NotImplementedError

    async def lease(self, count: int = 1) -> live_limits.StreamLease | None:
        """Engine streams for this socket under the user's and the server's bounds; on
        refusal the socket is closed (4430 for the user's bound, 4503 for the server's)."""
        lease, reason = live_limits.StreamLease.take(self.user_id, count)
        if lease is None:
            code = CLOSE_BUSY if reason == live_limits.SERVER_BUSY else CLOSE_USER_BUSY
            await self.fail(code, reason)
        return lease

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def guard(self) -> None:
        """Close within a few seconds of a logout, a revoked token or a lost membership."""
        interval = getattr(settings, "BERTH_LIVE_RECHECK_SECONDS", 2)
        while not self.closed:
            await asyncio.sleep(interval)
            try:
                code, _ = await database_sync_to_async(authorize)(
                    self.scope, self.model, self.pk, self.role
                )
            except Exception:  # noqa: BLE001 - the database blinking must not end a stream
                log.warning("re-checking access of a live stream failed", exc_info=True)
                continue
            if code is not None:
                code = CLOSE_FORBIDDEN if code == CLOSE_NOT_FOUND else code
                await self.fail(code, "Access to this stream was revoked.")
                return

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


# --- stack events ----------------------------------------------------------------------


def _events_after(stack: Stack, after: int, limit: int) -> list[dict[str, Any]]:
    events = live.stack_events(stack.pk, stack.tenant_id).filter(id__gt=after)[:limit]
    return [live.serialize_event(e) for e in events]


def _last_event_id(stack: Stack) -> int:
    last = live.stack_events(stack.pk, stack.tenant_id).order_by("-id").first()
    return last.pk if last else 0


class StackEventsConsumer(LiveConsumer):
    """A stack's events: catch-up from the Event table, then live ones, never twice."""

    model = Stack
    channel_layer_alias = DEFAULT_CHANNEL_LAYER

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        after = query.get("after")
        if after is not None and not after.isdigit():
            raise BadRequestError("after must be an event id (a whole number).")
        return {"after": int(after) if after is not None else None}

    async def begin(self) -> None:
        self.sent: set[int] = set()
        self.group = live.stack_group(self.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.catch_up(self.params["after"])

    async def catch_up(self, after: int | None) -> None:
        if after is None:
            last = await database_sync_to_async(_last_event_id)(self.obj)
            await self.send_json({"type": "caught_up", "last_id": last})
            return
        last = after
        while True:
            events = await database_sync_to_async(_events_after)(
                self.obj, last, live.CATCH_UP_LIMIT
            )
            for event in events:
                await self.send_event(event)
                last = event["id"]
            if len(events) < live.CATCH_UP_LIMIT:
                break
        await self.send_json({"type": "caught_up", "last_id": last})

    async def send_event(self, event: dict[str, Any]) -> None:
        if event["id"] in self.sent:
            return
        self.sent.add(event["id"])
        await self.send_json({"type": "event", "event": event})

    async def on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "resume":
            after = message.get("after")
            if isinstance(after, int) and after >= 0:
                await self.catch_up(after)

    async def stack_event(self, message: dict[str, Any]) -> None:
        await self.send_event(message["event"])

    async def stack_progress(self, message: dict[str, Any]) -> None:
        await self.send_json(message["payload"])

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)


# --- logs ------------------------------------------------------------------------------


class LineBuffer:
    """Lines handed from reader threads to the socket; bounded.

    Following: the oldest unsent lines are dropped beyond `size` (counted, reported).
    Not following (a download): the reader blocks instead, so nothing is lost.
    """

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop, lossy: bool) -> None:
        self.items: deque = deque()
        self.size = size
        self.lossy = lossy
        self.dropped = 0
        self.writers = 0
        self.error = ""
        self.loop = loop
        self.ready = asyncio.Event()
        self.cond = threading.Condition()
        self.closed = False

    def put(self, item: Any) -> None:
        with self.cond:
            while not self.lossy and len(self.items) >= self.size and not self.closed:
                self.cond.wait(0.5)
            if self.closed:
                return
            if len(self.items) >= self.size:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            wake = len(self.items) == 1
        if wake:
            self.loop.call_soon_threadsafe(self.ready.set)

    def put_many(self, batch: list[Any]) -> None:
        """`put` for a whole chunk of lines, under one lock and one wake-up."""
        if not self.lossy:
            for item in batch:
                self.put(item)
            return
        with self.cond:
            if self.closed:
                return
            was_empty = not self.items
            self.items.extend(batch)
            overflow = len(self.items) - self.size
            for _ in range(max(overflow, 0)):
                self.items.popleft()
            self.dropped += max(overflow, 0)
        if was_empty and batch:
            self.loop.call_soon_threadsafe(self.ready.set)

    def writer_done(self, error: str = "") -> None:
        with self.cond:
            self.writers -= 1
            self.error = self.error or error
        self.loop.call_soon_threadsafe(self.ready.set)

    def take(self, limit: int) -> tuple[list[Any], int, bool]:
        """(items, dropped since last take, every writer finished and nothing left)."""
        with self.cond:
            count = min(limit, len(self.items))
            items = [self.items.popleft() for _ in range(count)]
            dropped, self.dropped = self.dropped, 0
            finished = self.writers <= 0 and not self.items
            if not self.items and not finished:
                self.ready.clear()
            self.cond.notify_all()
        return items, dropped, finished

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _parse_since(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequestError("since must be an ISO 8601 time or UNIX seconds.") from exc
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.utc)
    return parsed.timestamp()


def _parse_log_params(query: dict[str, str]) -> dict[str, Any]:
    flags = {}
    for name in ("follow", "timestamps"):
        value = query.get(name, "1")
        if value not in ("0", "1", "true", "false"):
            raise BadRequestError(f"{name} must be 1 or 0.")
        flags[name] = value in ("1", "true")
    tail = query.get("tail", "100")
    if tail != "all" and not (tail.isdigit() and int(tail) <= 10000):
        raise BadRequestError("tail must be 'all' or a number of lines from 0 to 10000.")
    since = _parse_since(query["since"]) if query.get("since") else None
    return {**flags, "tail": tail, "since": since}


class LogTarget:
    """One container whose log a socket reads, with what its lines are labelled with."""

    def __init__(self, container: Container, label: bool) -> None:
        self.pk = container.pk
        self.name = container.name
        self.engine_id = container.engine_id
        self.host = container.host
        self.label = label

    def entry(self, line: streams.LogLine, timestamps: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"stream": line.stream, "line": line.text}
        if timestamps:
            item["ts"] = line.ts
        if self.label:
            item["container"] = self.name
            item["container_id"] = self.pk
        return item


class LogsConsumer(LiveConsumer):
    """Logs of one container; the service variant merges several in time order."""

    model = Container

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        return _parse_log_params(query)

    async def targets(self) -> list[LogTarget]:
        return [LogTarget(self.obj, label=False)]

    async def begin(self) -> None:
        self.seq = 0
        self.acked = 0
        self.window = asyncio.Event()
        self.window.set()
        self.opened: list[streams.LogStream] = []
        self.lock = threading.Lock()
        follow = self.params["follow"]
        self.buffer = LineBuffer(LOG_BUFFER, asyncio.get_running_loop(), lossy=follow)
        targets = await self.targets()
        # Following, each container is read by a thread of its own; else one thread merges.
        self.lease_held = await self.lease(max(len(targets), 1) if follow else 1)
        if self.lease_held is None:
            return
        self.buffer.writers = 1
        reader = self.read_merged if not follow else self.read_each
        streams.POOL.submit(reader, targets)
        self.spawn(self.pump())

    # reader side (worker threads) --------------------------------------------------------

    def open_stream(self, target: LogTarget) -> streams.LogStream:
        stream = streams.LogStream(
            get_engine(target.host),
            target.engine_id,
            follow=self.params["follow"],
            tail=self.params["tail"],
            since=self.params["since"],
        )
        with self.lock:
            self.opened.append(stream)
            if self.closed:
                stream.close()
        return stream

    def read_merged(self, targets: list[LogTarget]) -> None:
        """Not following: an exact k-way merge by timestamp, in one thread."""
        error = ""
        opened: list[streams.LogStream] = []
        try:
            opened = [self.open_stream(target) for target in targets]
            iterators = [
                _keyed(index, stream, target)
                for index, (stream, target) in enumerate(zip(opened, targets, strict=True))
            ]
            for _ts, _index, line, target in heapq.merge(*iterators, key=lambda x: x[:2]):
                self.buffer.put(target.entry(line, self.params["timestamps"]))
        except EngineError as exc:
            error = str(exc)
        finally:
            _close_streams(opened)
            self.finish_reading(error)

    def read_each(self, targets: list[LogTarget]) -> None:
        """Following: one thread per container (the first one is this thread)."""
        extra = targets[1:]
        with self.buffer.cond:
            self.buffer.writers += len(extra)
        for target in extra:
            streams.POOL.submit(self.read_one, target)
        if targets:
            self.read_one(targets[0])
        else:
            self.finish_reading("", release=True)

    def read_one(self, target: LogTarget) -> None:
        error = ""
        stream = None
        try:
            stream = self.open_stream(target)
            for batch in stream.batches():
                now = time.monotonic()
                self.buffer.put_many(
                    [(ts_key(line.ts), now, target.entry(line, True)) for line in batch]
                )
        except EngineError as exc:
            error = str(exc)
        finally:
            _close_streams([stream] if stream else [])
            self.finish_reading(error)

    def finish_reading(self, error: str, release: bool = True) -> None:
        self.buffer.writer_done(error)
        if release:
            self.lease_held.give()

    # socket side ---------------------------------------------------------------------------

    async def pump(self) -> None:
        """Send batches while the client's window allows; report drops; end when done."""
        while not self.closed:
            await self.window.wait()
            if self.pending_lines():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.buffer.ready.wait(), MERGE_DELAY / 5)
            else:
                await self.buffer.ready.wait()
            items, dropped, finished = self.buffer.take(LOG_BATCH)
            if dropped:
                await self.send_json({"type": "dropped", "count": dropped})
            lines = self.arrange(items, finished)
            if lines:
                await self.send_lines(lines)
            if finished and not self.pending_lines():
                await self.finish()
                return

    def arrange(self, items: list[Any], finished: bool) -> list[dict[str, Any]]:
        """Lines ready to send, in order (the merged variant holds some back)."""
        if not self.params["follow"]:
            return items
        return [self.strip(entry) for _ts, _at, entry in items]

    def pending_lines(self) -> bool:
        return False

    def strip(self, entry: dict[str, Any]) -> dict[str, Any]:
        if not self.params["timestamps"]:
            entry.pop("ts", None)
        return entry

    async def send_lines(self, lines: list[dict[str, Any]]) -> None:
        self.seq += 1
        await self.send_json({"type": "logs", "seq": self.seq, "lines": lines})
        if self.seq - self.acked >= LOG_WINDOW:
            self.window.clear()

    async def finish(self) -> None:
        if self.buffer.error:
            await self.fail(CLOSE_ENGINE, self.buffer.error)
            return
        await self.send_json({"type": "end"})
        await self.shutdown(1000)

    async def on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "ack" and isinstance(message.get("seq"), int):
            self.acked = max(self.acked, min(message["seq"], self.seq))
            if self.seq - self.acked < LOG_WINDOW:
                self.window.set()

    async def release(self) -> None:
        if not hasattr(self, "buffer"):
            return
        self.buffer.close()
        with self.lock:
            opened = list(self.opened)
        for stream in opened:
            await asyncio.to_thread(stream.close)


def _keyed(index: int, stream: streams.LogStream, target: LogTarget):
    for line in stream.lines():
        yield ts_key(line.ts), index, line, target


def ts_key(ts: str) -> str:
    """A sortable form of an engine timestamp (the fraction padded to nanoseconds)."""
    head, dot, fraction = ts.rstrip("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')}" if dot else f"{head}.000000000"


def _close_streams(opened: list[streams.LogStream]) -> None:
    """The reader's own cleanup: the docker responses and the engine clients."""
    for stream in opened:
        stream.close()
        stream.engine.close()


def _service_targets(service: Service) -> list[LogTarget]:
    containers = Container.objects.filter(service=service).select_related("host")
    return [LogTarget(c, label=True) for c in containers.order_by("replica", "pk")]


class ServiceLogsConsumer(LogsConsumer):
    """All containers of a service, merged in time order, each line naming its container."""

    model = Service

    async def targets(self) -> list[LogTarget]:
        return await database_sync_to_async(_service_targets)(self.obj)

    async def begin(self) -> None:
        self.held: list[tuple[str, float, int, dict[str, Any]]] = []
        self.counter = 0
        await super().begin()

    def arrange(self, items: list[Any], finished: bool) -> list[dict[str, Any]]:
        """Following: hold lines MERGE_DELAY in a heap, release them in timestamp order."""
        if not self.params["follow"]:
            return items
        for ts, arrived, entry in items:
            self.counter += 1
            heapq.heappush(self.held, (ts, arrived, self.counter, entry))
        ready_before = time.monotonic() - MERGE_DELAY
        lines = []
        while self.held and (finished or self._oldest_arrival() <= ready_before):
            if len(lines) >= LOG_BATCH:
                break
            lines.append(self.strip(heapq.heappop(self.held)[3]))
        while len(self.held) > LOG_BUFFER:
            heapq.heappop(self.held)
            self.buffer.dropped += 1
        return lines

    def _oldest_arrival(self) -> float:
        return self.held[0][1]

    def pending_lines(self) -> bool:
        return bool(getattr(self, "held", None))


# --- shell -----------------------------------------------------------------------------


def _record_shell(container: Container, user: Any, action: str, data: dict[str, Any]) -> int:
    event = record_event(
        action,
        actor=user,
        tenant=container.stack.tenant,
        obj=container,
        message=f"Shell {data.get('shell', '')} in {container.name}",
        data=data,
    )
    return event.pk


def _save_transcript(container: Container, start_event: int, output: bytes) -> str:
    folder = Path(settings.BERTH_STATE_DIR) / "transcripts" / container.stack.tenant.slug
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{start_event}-{container.name}.log"
    path.write_bytes(output)
    path.chmod(0o600)
    return str(path)


class OutputWindow:
    """Shell output bytes sent versus acknowledged by the client (credit-based flow).

    The client acknowledges the cumulative count of output bytes it has consumed; at
    most `size` bytes are ever unacknowledged, so a client that reads slowly or not at
    all costs the server at most a window of memory. Acks are cumulative, so a client
    may send one every few frames: throughput stays as without a window as long as an
    ack arrives before the window drains. `size` 0 switches flow control off.
    """

    def __init__(self, size: int) -> None:
        self.size = max(int(size), 0)
        self.total = 0
        self.acked = 0
        self.ready = asyncio.Event()
        self.ready.set()
        self.full_since: float | None = None

    def room(self) -> int:
        """How many bytes may be read from the exec and sent now."""
        if not self.size:
            return streams.READ_SIZE
        return max(min(streams.READ_SIZE, self.size - (self.total - self.acked)), 0)

    def sent(self, count: int) -> None:
        self.total += count
        if self.size and self.total - self.acked >= self.size and self.ready.is_set():
            self.ready.clear()
            self.full_since = time.monotonic()

    def ack(self, count: int) -> None:
        """A cumulative ack; stale, repeated or too large counts change nothing unsafe."""
        count = min(count, self.total)
        if count <= self.acked:
            return
        self.acked = count
        if not self.size or self.total - self.acked < self.size:
            self.ready.set()
            self.full_since = None
        else:  # progress, but still full: the client is alive, restart the clock
            self.full_since = time.monotonic()

    def stalled_for(self, now: float) -> float:
        """Seconds the window has been full without any ack."""
        return 0.0 if self.full_since is None else now - self.full_since


class ShellConsumer(LiveConsumer):
    """An interactive `docker exec` with a TTY; members and above only."""

    model = Container
    role = Role.MEMBER

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        shell = query.get("shell", "/bin/sh")
        if shell not in SHELLS:
            raise BadRequestError(f"shell must be one of {', '.join(SHELLS)}.")
        return {"shell": shell, **_size(query.get("cols", "80"), query.get("rows", "24"))}

    async def begin(self) -> None:
        self.session: streams.ShellSession | None = None
        self.output = bytearray()
        self.record = self.obj.stack.environment.record_shell_transcripts
        self.last_input = time.monotonic()
        self.window = OutputWindow(getattr(settings, "BERTH_SHELL_WINDOW_BYTES", SHELL_WINDOW))
        self.lease_held = await self.lease()
        if self.lease_held is None:
            return
        try:
            await self.start_session()
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))
            return
        if self.session is None:
            return
        self.spawn(self.pump())
        self.spawn(self.idle_watch())

    async def start_session(self) -> None:
        engine = get_engine(self.obj.host)
        running = await asyncio.to_thread(streams.container_running, engine, self.obj.engine_id)
        if not running:
            await self.fail(CLOSE_NOT_RUNNING, "The container is not running.")
            return
        session = streams.ShellSession(
            engine,
            self.obj.engine_id,
            self.params["shell"],
            uuid.uuid4().hex,
            self.params["cols"],
            self.params["rows"],
        )
        self.session = session
        await asyncio.to_thread(session.start)
        self.started = timezone.now()
        self.start_event = await database_sync_to_async(_record_shell)(
            self.obj, self.scope["user"], "container.shell_start", {"shell": self.params["shell"]}
        )
        await self.send_json(
            {
                "type": "ready",
                "shell": self.params["shell"],
                "container": self.obj.name,
                "window": self.window.size,
            }
        )

    async def in_pool(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(streams.POOL, func, *args)

    async def pump(self) -> None:
        """Copy exec output to the socket while the client's window has room.

        daphne never pushes back: whatever is sent is queued in its memory until the
        client reads it. So the exec socket is simply not read while the window is
        full; the kernel's buffers fill and the TTY blocks the printing process.
        """
        session, window = self.session, self.window
        while not self.closed:
            await window.ready.wait()
            data = await self.in_pool(session.read, window.room())
            if not data:
                break
            if self.record and len(self.output) < MAX_TRANSCRIPT:
                self.output += data
            window.sent(len(data))
            await self.send(bytes_data=data)
        if self.closed:
            return
        self.exit_code = await asyncio.to_thread(_exit_code_soon, session)
        await self.send_json({"type": "exit", "code": self.exit_code})
        await self.shutdown(1000)

    async def idle_watch(self) -> None:
        """Close a shell nobody types into, and one whose client stopped acknowledging
        (its output would otherwise hold an exec and a thread slot forever)."""
        idle = getattr(settings, "BERTH_SHELL_IDLE_SECONDS", 900)
        patience = getattr(settings, "BERTH_SHELL_ACK_SECONDS", SHELL_ACK_SECONDS)
        while not self.closed:
            now = time.monotonic()
            left = self.last_input + idle - now
            if left <= 0:
                await self.fail(CLOSE_IDLE, "The shell was idle too long and was closed.")
                return
            if self.window.stalled_for(now) >= patience:
                message = "The client stopped acknowledging output; the shell was closed."
                await self.fail(CLOSE_ACK_TIMEOUT, message)
                return
            await asyncio.sleep(min(left, 1.0))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if bytes_data is not None:
            await self.write(bytes_data)
            return
        await super().receive(text_data=text_data)

    async def write(self, data: bytes) -> None:
        if getattr(self, "session", None) is None or self.closed:
            return
        self.last_input = time.monotonic()
        await asyncio.to_thread(self.session.write, data)

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ack":
            count = message.get("bytes")
            if isinstance(count, int) and not isinstance(count, bool):
                self.window.ack(count)
        elif kind == "input" and isinstance(message.get("data"), str):
            await self.write(message["data"].encode())
        elif kind == "resize" and getattr(self, "session", None) is not None:
            try:
                size = _size(str(message.get("cols")), str(message.get("rows")))
            except BadRequestError:
                return
            await asyncio.to_thread(self.session.resize, size["cols"], size["rows"])

    async def release(self) -> None:
        session, self.session = getattr(self, "session", None), None
        if session is not None:
            await asyncio.to_thread(session.close)
            if hasattr(self, "start_event"):
                await self.record_end(session)
            await asyncio.to_thread(session.engine.close)
        if getattr(self, "lease_held", None) is not None:
            self.lease_held.give_all()

    async def record_end(self, session: streams.ShellSession) -> None:
        code = getattr(self, "exit_code", None)
        if code is None:
            code = await asyncio.get_running_loop().run_in_executor(None, session.exit_code)
        data: dict[str, Any] = {
            "shell": self.params["shell"],
            "exit_code": code,
            "seconds": round((timezone.now() - self.started).total_seconds(), 1),
            "start_event": self.start_event,
        }
        if self.record:
            data["transcript"] = await database_sync_to_async(_save_transcript)(
                self.obj, self.start_event, bytes(self.output)
            )
            data["transcript_bytes"] = len(self.output)
        await database_sync_to_async(_record_shell)(
            self.obj, self.scope["user"], "container.shell_end", data
        )


def _exit_code_soon(session: streams.ShellSession) -> int | None:
    """The engine marks an exec finished a moment after its output ends."""
    for _ in range(20):
        code = session.exit_code()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def _size(cols: str, rows: str) -> dict[str, int]:
    if not (cols.isdigit() and rows.isdigit() and 0 < int(cols) <= 1000 and 0 < int(rows) <= 1000):
        raise BadRequestError("cols and rows must be whole numbers from 1 to 1000.")
    return {"cols": int(cols), "rows": int(rows)}


# --- stats -----------------------------------------------------------------------------


class StatsConsumer(LiveConsumer):
    """CPU, memory, network and block I/O of one container every ~2 seconds."""

    model = Container
    interval = 2.0

    async def begin(self) -> None:
        engine = get_engine(self.obj.host)
        try:
            running = await self.in_pool(streams.container_running, engine, self.obj.engine_id)
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))
            return
        if not running:
            await self.fail(CLOSE_NOT_RUNNING, "The container is not running.")
            return
        self.lease_held = await self.lease()
        if self.lease_held is None:
            return
        self.latest: deque = deque(maxlen=1)
        self.ended = threading.Event()
        self.stream = streams.StatsStream(engine, self.obj.engine_id)
        streams.POOL.submit(self.read)
        self.spawn(self.pump())

    async def in_pool(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def read(self) -> None:
        try:
            for sample in self.stream.samples():
                self.latest.append(sample)
        except EngineError:
            pass
        finally:
            self.ended.set()
            self.lease_held.give()

    async def pump(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.interval if self.latest else 0.2)
            if self.latest:
                sample = self.latest.pop()
                await self.send_json({"type": "stats", "at": timezone.now().isoformat(), **sample})
            elif self.ended.is_set():
                await self.send_json({"type": "end"})
                await self.shutdown(1000)
                return

    async def release(self) -> None:
        stream = getattr(self, "stream", None)
        if stream is not None:
            self.stream = None
            await asyncio.get_running_loop().run_in_executor(None, _close_stats, stream)


def _close_stats(stream: streams.StatsStream) -> None:
    stream.close()
    stream.engine.close()
