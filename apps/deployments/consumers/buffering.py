"""Bounds on what a socket holds between a docker stream and its client.

`LineBuffer` hands log lines from reader threads to a log socket; `OutputWindow` counts
the shell output a client has not acknowledged yet. Both keep a slow or silent client
from costing the server more than a fixed amount of memory.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from apps.hosts.engine import streams


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
