"""Log sockets: one container's log, or a service's containers merged in time order.

Following, each container's lines come from the process's one shared engine stream of
that container (`fanout.LOGS`), after the socket's own tail; not following, a reader
thread of the socket's own merges them. Either way they go into the socket's
`LineBuffer`, and the socket side sends them in batches under the client's ack window
(LOG_WINDOW batches). Lines are ordered by `LogLine.sort_key`, the order the log
download uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
import time
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.deployments import live_limits
from apps.deployments.consumers import fanout
from apps.deployments.consumers.base import (
    CLOSE_BUSY,
    CLOSE_ENGINE,
    BadRequestError,
    LiveConsumer,
)
from apps.deployments.consumers.buffering import LineBuffer
from apps.deployments.models import Container, Service
from apps.hosts.engine import EngineError, get_engine, streams
from apps.hosts.engine.driver import LogReader

LOG_WINDOW = 16
LOG_BATCH = 500
LOG_BUFFER = 10000
MERGE_DELAY = 0.25


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
    if tail != "all" and not (tail.isdecimal() and int(tail) <= 10000):
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
        self.opened: list[LogReader] = []
        self.subscriptions: list[tuple[fanout.Shared, fanout.LogSubscriber]] = []
        self.lock = threading.Lock()
        follow = self.params["follow"]
        self.buffer = LineBuffer(LOG_BUFFER, asyncio.get_running_loop(), lossy=follow)
        targets = await self.targets()
        if follow:
            await self.subscribe(targets)
            return
        self.lease_held = await self.lease()
        if self.lease_held is None:
            return
        self.buffer.writers = 1
        streams.POOL.submit(self.read_merged, targets)
        self.spawn(self.pump())

    async def subscribe(self, targets: list[LogTarget]) -> None:
        """Following: each container's shared stream, after this socket's own tail.

        The user's share counts one stream per container (BERTH_LIVE_STREAMS_PER_USER);
        the server's bound counts the engine streams the fan-out opens, not the sockets.
        """
        self.lease_held = await self.lease(max(len(targets), 1), server=False)
        if self.lease_held is None:
            return
        self.buffer.writers = max(len(targets), 1)
        if not targets:
            self.buffer.writer_done("")
        tail, since = self.params["tail"], self.params["since"]
        own_tail = tail != "0"
        for target in targets:
            subscriber = fanout.LogSubscriber(self.buffer, target, own_tail, LOG_BUFFER)
            shared = fanout.LOGS.subscribe(target.host, target.engine_id, subscriber)
            if shared is None:
                await self.fail(CLOSE_BUSY, live_limits.SERVER_BUSY)
                return
            self.subscriptions.append((shared, subscriber))
            if own_tail:
                fanout.submit_catch_up(subscriber.catch_up, shared, tail, since)
        self.spawn(self.pump())

    # reader side (worker threads) --------------------------------------------------------

    def open_stream(self, target: LogTarget) -> LogReader:
        stream = get_engine(target.host).logs(
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
        opened: list[LogReader] = []
        try:
            opened = [self.open_stream(target) for target in targets]
            for index, line in streams.merge_lines([stream.lines() for stream in opened]):
                self.buffer.put(targets[index].entry(line, self.params["timestamps"]))
        except EngineError as exc:
            error = str(exc)
        finally:
            _close_streams(opened)
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
        subscriptions, self.subscriptions = self.subscriptions, []
        if subscriptions:
            await asyncio.to_thread(fanout.detach_all, fanout.LOGS, subscriptions)
        if self.params["follow"] and getattr(self, "lease_held", None) is not None:
            self.lease_held.give_all()
        with self.lock:
            opened = list(self.opened)
        for stream in opened:
            await asyncio.to_thread(stream.close)


def _close_streams(opened: list[LogReader]) -> None:
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

    def prepare(self, obj: Service) -> list[LogTarget]:
        return _service_targets(obj)

    async def targets(self) -> list[LogTarget]:
        return self.prepared

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
