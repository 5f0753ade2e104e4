"""Per-user bounds on live streams and log downloads, beside the per-server one.

The server bound (`streams.reserve_slot`, BERTH_LIVE_STREAM_THREADS threads per web
process) keeps the process alive, but alone it lets one user (one script, one tab left
open per container) take every slot and lock every other tenant out. So each user also
gets a share:

- BERTH_LIVE_STREAMS_PER_USER: engine streams a user holds at once. A container's log,
  stats or shell socket holds one, a following service-log socket one per container,
  a log download one. A followed log or stats stream is shared by every socket of the
  process watching the container (`consumers/fanout.py`), but counts for each of their
  users: the bound is what a user may ask for, whoever else watches.
- BERTH_LIVE_SOCKETS_PER_USER: open websockets of a user, of any route (the events
  socket holds no engine stream, but re-checks access every few seconds and listens on
  the channel layer).

0 switches a bound off. Like the server bound, the counts live in the web process:
`make run` runs one daphne; with several processes each has its own counts.
"""

from __future__ import annotations

import threading
from collections import Counter

from django.conf import settings

from apps.hosts.engine import streams

USER_BUSY = "You have too many live streams open (at most {limit}); close some and try again."
SOCKETS_BUSY = "You have too many live connections open (at most {limit}); close some tabs."
SERVER_BUSY = "Too many live streams right now; try again later."


class PerUser:
    """How many of something each user holds, under a limit read from settings."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        self.held: Counter = Counter()
        self.lock = threading.Lock()

    @property
    def limit(self) -> int:
        return getattr(settings, self.setting)

    def take(self, user_id: int, count: int = 1) -> bool:
        limit = self.limit
        with self.lock:
            if limit and self.held[user_id] + count > limit:
                return False
            self.held[user_id] += count
            return True

    def give(self, user_id: int, count: int = 1) -> None:
        with self.lock:
            self.held[user_id] -= count
            if self.held[user_id] <= 0:
                del self.held[user_id]


SOCKETS = PerUser("BERTH_LIVE_SOCKETS_PER_USER")
STREAMS = PerUser("BERTH_LIVE_STREAMS_PER_USER")


class StreamLease:
    """Engine streams held for one socket or download: the user's share, and server slots
    unless the streams are shared (`server=False`: the fan-out takes a server slot per
    engine stream it opens, however many sockets it feeds).

    Taken together, given back one by one (each reader thread gives its own back when
    it ends) or all at once; never more than was taken, from any thread.
    """

    def __init__(self, user_id: int, count: int, server: bool = True) -> None:
        self.user_id = user_id
        self.left = count
        self.server = server
        self.lock = threading.Lock()

    @classmethod
    def take(
        cls, user_id: int, count: int = 1, server: bool = True
    ) -> tuple[StreamLease | None, str]:
        """(the lease, "") or (None, the reason to show: the user's or the server's bound)."""
        if not STREAMS.take(user_id, count):
            return None, USER_BUSY.format(limit=STREAMS.limit)
        taken = 0
        while server and taken < count and streams.reserve_slot():
            taken += 1
        if server and taken < count:
            for _ in range(taken):
                streams.release_slot()
            STREAMS.give(user_id, count)
            return None, SERVER_BUSY
        return cls(user_id, count, server), ""

    def give(self, count: int = 1) -> None:
        with self.lock:
            count = min(count, self.left)
            self.left -= count
        for _ in range(count if self.server else 0):
            streams.release_slot()
        if count:
            STREAMS.give(self.user_id, count)

    def give_all(self) -> None:
        self.give(self.left)
