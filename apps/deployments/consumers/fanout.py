"""One engine stream per container and web process, shared by every socket watching it.

A followed log (or stats) socket used to hold an engine stream and a reader thread of
its own, so the process served at most BERTH_LIVE_STREAM_THREADS of them, and 200
people watching the same ten containers took 200 threads and 200 engine connections.
Here the first socket watching a container opens the stream (one thread of the
engine's stream pool, one server slot); the following sockets subscribe to it, and
the reader hands each batch to every subscriber. The last subscriber leaving closes
it. A stream that ends (the container stopped) or fails reaches every subscriber, the
failure with its message.

Each subscriber still gets its own beginning: a log socket's tail or `since` is read
apart (a short, non-following read, `LogSubscriber.catch_up`), while the live lines
the shared stream delivers meanwhile wait in the subscriber; it then goes live without
a gap or a repeated line. Authorization stays per socket: the fan-out only moves bytes
to sockets that were allowed, and re-checked, on their own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from apps.hosts.engine import EngineError, get_engine, streams
from apps.hosts.models import Host

log = logging.getLogger(__name__)

#: Short reads of a new log subscriber's own tail: a thread each while they run. Kept
#: apart from the stream pool, whose threads the long-lived shared streams may all hold.
CATCH_UP = ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-log-tail")
#: How long a subscriber's tail read waits for the shared stream to be established.
OPEN_TIMEOUT = 30.0


class Subscriber(Protocol):
    """A socket's end of a shared stream; both methods are called in the reader thread."""

    def feed(self, items: list[Any]) -> None: ...

    def end(self, error: str) -> None: ...


class Shared:
    """One engine stream and the subscribers it feeds."""

    def __init__(self, fanout: Fanout, key: tuple[int, str], host: Host, engine_id: str) -> None:
        self.fanout = fanout
        self.key = key
        self.host = host
        self.engine_id = engine_id
        self.subscribers: list[Subscriber] = []
        self.lock = threading.Lock()
        #: Set once the engine answered (the stream follows from then on) or failed.
        self.opened = threading.Event()
        self.stream: Any = None
        self.closing = False
        self.finished = False

    def run(self) -> None:
        """The reader thread: every batch to every subscriber, then the end to all."""
        error = ""
        try:
            stream = self.fanout.open(self)
            with self.lock:
                self.stream = stream
                closing = self.closing
            if not closing:
                for items in self.fanout.read(stream, self.opened):
                    with self.lock:
                        subscribers = list(self.subscribers)
                    for subscriber in subscribers:
                        _tell(subscriber.feed, items)
        except EngineError as exc:
            error = f"{self.fanout.failure}: {exc}"
        except Exception as exc:  # noqa: BLE001 - every subscriber must hear of it
            log.exception("shared %s stream of %s failed", self.fanout.kind, self.engine_id)
            error = f"{self.fanout.failure}: {type(exc).__name__}"
        finally:
            self.opened.set()
            self.fanout.forget(self)
            with self.lock:
                self.finished = True
                subscribers, self.subscribers = self.subscribers, []
            for subscriber in subscribers:
                _tell(subscriber.end, error)
            self.close_stream()
            streams.release_slot()

    def close_stream(self) -> None:
        with self.lock:
            stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()
            stream.engine.close()


def _tell(method: Callable[[Any], None], value: Any) -> None:
    """One subscriber's trouble (its event loop gone) must not end the others' stream."""
    try:
        method(value)
    except Exception:  # noqa: BLE001
        log.debug("a subscriber of a shared stream failed", exc_info=True)


class Fanout:
    """The shared streams of one kind (logs or stats) in this process, by container."""

    kind = ""
    failure = "The engine stream failed"

    def __init__(self) -> None:
        self.streams: dict[tuple[int, str], Shared] = {}
        self.lock = threading.Lock()

    def open(self, shared: Shared) -> Any:
        raise NotImplementedError

    def read(self, stream: Any, opened: threading.Event) -> Iterator[list[Any]]:
        raise NotImplementedError

    def subscribe(self, host: Host, engine_id: str, subscriber: Subscriber) -> Shared | None:
        """Attach `subscriber` to the container's stream, opening it when none is open;
        None when a new stream would pass the server's bound (BERTH_LIVE_STREAM_THREADS)."""
        key = (host.pk, engine_id)
        with self.lock:
            shared = self.streams.get(key)
            if shared is None:
                if not streams.reserve_slot():
                    return None
                shared = self.streams[key] = Shared(self, key, host, engine_id)
                start = True
            else:
                start = False
            with shared.lock:
                shared.subscribers.append(subscriber)
        if start:
            streams.POOL.submit(shared.run)
        return shared

    def unsubscribe(self, shared: Shared, subscriber: Subscriber) -> None:
        """Detach; the last subscriber leaving closes the engine stream (blocking: call
        it from a thread)."""
        with self.lock, shared.lock:
            with contextlib.suppress(ValueError):
                shared.subscribers.remove(subscriber)
            last = not shared.subscribers and not shared.finished
            if last:
                shared.closing = True
                if self.streams.get(shared.key) is shared:
                    del self.streams[shared.key]
        if last:
            shared.close_stream()

    def forget(self, shared: Shared) -> None:
        with self.lock:
            if self.streams.get(shared.key) is shared:
                del self.streams[shared.key]

    def open_count(self) -> int:
        """Engine streams of this kind open in the process (for tests and benchmarks)."""
        with self.lock:
            return len(self.streams)


class LogFanout(Fanout):
    kind = "log"
    failure = "The container's log stream failed"

    def open(self, shared: Shared) -> Any:
        return get_engine(shared.host).logs(shared.engine_id, follow=True, tail="0")

    def read(self, stream: Any, opened: threading.Event) -> Iterator[list[Any]]:
        return stream.batches(opened=opened)


class StatsFanout(Fanout):
    kind = "stats"
    failure = "The container's stats stream failed"

    def open(self, shared: Shared) -> Any:
        return get_engine(shared.host).stats(shared.engine_id)

    def read(self, stream: Any, opened: threading.Event) -> Iterator[list[Any]]:
        opened.set()
        for sample in stream.samples():
            yield [sample]


LOGS = LogFanout()
STATS = StatsFanout()


class LogSubscriber:
    """One container's live lines for one log socket, after its own tail.

    `feed` turns the shared lines into this socket's entries (labelled as its target
    says) and puts them into the socket's `LineBuffer`, which drops the oldest beyond
    its bound for a client that does not ack: a slow socket never slows the others.
    While the tail is being read (`catch_up`), live lines wait here instead.
    """

    def __init__(self, buffer: Any, target: Any, pending: bool, limit: int) -> None:
        self.buffer = buffer
        self.target = target
        self.lock = threading.Lock()
        self.pending: deque | None = deque(maxlen=limit) if pending else None
        self.ended: str | None = None
        self.done = False

    def entries(self, lines: list[streams.LogLine]) -> list[tuple[str, float, dict[str, Any]]]:
        now = time.monotonic()
        return [(line.sort_key, now, self.target.entry(line, True)) for line in lines]

    def feed(self, items: list[streams.LogLine]) -> None:
        # Under the lock, so no live line overtakes the held ones `go_live` hands on.
        with self.lock:
            if self.pending is not None:
                overflow = len(self.pending) + len(items) - (self.pending.maxlen or 0)
                if overflow > 0:  # the oldest held lines go, counted as the buffer's
                    with self.buffer.cond:
                        self.buffer.dropped += overflow
                self.pending.extend(items)
            else:
                self.buffer.put_many(self.entries(items))

    def end(self, error: str) -> None:
        with self.lock:
            if self.pending is not None:
                self.ended = error
                return
        self.finish(error)

    def finish(self, error: str) -> None:
        """The socket's buffer hears of this container's end once, whoever tells first."""
        with self.lock:
            if self.done:
                return
            self.done = True
        self.buffer.writer_done(error)

    def catch_up(self, shared: Shared, tail: str, since: float | None) -> None:
        """In a `CATCH_UP` thread: this socket's tail, then the live lines held meanwhile.

        The tail is read once the shared stream follows (`opened`), so every line is in
        one or the other; lines in both (read by the tail, then delivered live) are
        dropped from the held ones by their timestamp (and text, for lines of the same
        nanosecond).
        """
        error = ""
        last, same = "", Counter()
        try:
            shared.opened.wait(OPEN_TIMEOUT)
            stream = get_engine(self.target.host).logs(
                self.target.engine_id, follow=False, tail=tail, since=since
            )
            try:
                for batch in stream.batches():
                    self.buffer.put_many(self.entries(batch))
                    for line in batch:
                        if line.sort_key != last:
                            last, same = line.sort_key, Counter()
                        same[(line.stream, line.text)] += 1
            finally:
                stream.close()
                stream.engine.close()
        except EngineError as exc:
            error = f"{LOGS.failure}: {exc}"
        self.go_live(last, same, since, error)

    def go_live(self, last: str, same: Counter, since: float | None, error: str) -> None:
        floor = _since_key(since)
        with self.lock:
            fresh = []
            for line in self.pending or ():
                key = line.sort_key
                if key < last or (floor and key < floor):
                    continue
                if key == last and same[(line.stream, line.text)] > 0:
                    same[(line.stream, line.text)] -= 1
                    continue
                fresh.append(line)
            if fresh:
                self.buffer.put_many(self.entries(fresh))
            self.pending = None
            ended = self.ended
        if error:
            self.finish(error)
        elif ended is not None:
            self.finish(ended)


def _since_key(since: float | None) -> str:
    """`since` (UNIX seconds) as a `LogLine.sort_key`, to drop held lines before it."""
    if since is None:
        return ""
    whole = int(since)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{round((since - whole) * 1e9):09d}"


class StatsSubscriber:
    """The latest sample of a shared stats stream, for one stats socket."""

    def __init__(self) -> None:
        self.latest: deque = deque(maxlen=1)
        self.ended = threading.Event()
        self.error = ""

    def feed(self, items: list[Any]) -> None:
        self.latest.append(items[-1])

    def end(self, error: str) -> None:
        self.error = error
        self.ended.set()


def detach_all(fanout: Fanout, pairs: list[tuple[Shared, Subscriber]]) -> None:
    """Unsubscribe each (blocking: a last subscriber closes its engine stream)."""
    for shared, subscriber in pairs:
        fanout.unsubscribe(shared, subscriber)


def submit_catch_up(func: Callable[..., None], *args: Any) -> None:
    CATCH_UP.submit(func, *args)
