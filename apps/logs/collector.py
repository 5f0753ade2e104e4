"""The log collector: bounded passes that copy each container's new lines into the store.

How it runs, and why: a periodic Celery beat task (`logs.collect_all`, every
BERTH_LOG_COLLECT_SECONDS) queues one pass per engine host; a pass lists the host's
containers once, then asks each container for its lines since its cursor with one
non-following logs call (`since=<cursor>`, `until=<now - settle>`) and returns. No stream
stays open per container: long-lived followers would hold a thread and a socket per
container for ever (the trap of django/channels#1173), would need a process of their own
to supervise, and a crash would still have to resume from a cursor. A pass is idempotent
and bounded (BERTH_LOG_MAX_LINES_PER_PASS per container), so `acks_late` redelivery,
two beat schedulers or a manual run beside the periodic one are all harmless.

Safe to run twice at once: each container is claimed with a lease (one conditional
UPDATE, as the reconciler claims stacks), and every batch is committed only if the
source row, locked, still carries this pass's token and the cursor the pass started
from; otherwise the batch is dropped (another pass stored those lines).

No gap and no duplicate across a crash: lines and the cursor that covers them are
written in one transaction, so a worker killed between fetching and committing leaves
the cursor where the stored lines end and the next pass fetches them again.

A Swarm cluster host's sources are its tasks (engine id: the task id), on every node:
apps/hosts/engine/swarm_logs.py reads each through its node's own engine where Berth
reaches it, else through the manager's task log endpoint. Both give the same lines with
the same nanosecond timestamps and take `since` exactly (measured, see there), so the
cursor below is the same for them; the manager ignores `until`, applied there instead.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.deployments import containers as naming
from apps.deployments.models import Stack
from apps.hosts.engine import (
    EngineDriver,
    EngineError,
    ManagedContainer,
    SwarmTaskLogs,
    get_engine,
    swarm_task_logs,
)
from apps.hosts.engine.streams import parse_line
from apps.hosts.engine.swarm_logs import rfc3339_ns
from apps.hosts.models import Host
from apps.logs import store
from apps.logs.models import LogLine, LogSource
from apps.logs.rows import NS, RowMaker, split_lines
from apps.tenants.models import Environment

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


# --- engine timestamps ----------------------------------------------------------------


def engine_instant(ns: int) -> str:
    """Nanoseconds -> the engine's exact `since`/`until` form, "<seconds>.<nanoseconds>"."""
    return f"{ns // NS}.{ns % NS:09d}"


def as_datetime(ns: int) -> datetime:
    return _second(ns // NS).replace(microsecond=ns % NS // 1000)


@lru_cache(maxsize=4096)
def _second(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- the cursor -----------------------------------------------------------------------


def window_start(cursor_ns: int) -> int:
    """Where a resumed fetch starts: BERTH_LOG_SETTLE_SECONDS before the cursor, on a
    microsecond (the precision the store keeps), so the overlap can be compared exactly."""
    start = cursor_ns - int(settings.BERTH_LOG_SETTLE_SECONDS * NS)
    return max(start - start % 1000, 0)


@dataclass
class Cursor:
    """Which fetched lines are new: the largest timestamp stored, and the lines stored in
    the overlap window before it.

    The engine returns a log in file order, and stdout and stderr lines reach the file
    slightly out of timestamp order (one copier per stream). A cursor that was only "the
    last timestamp" would skip a line written after the cursor's line with an earlier
    timestamp. So a resumed fetch starts a settle period before the cursor
    (`window_start`), and a line in that overlap is new only if the store holds fewer
    lines with its (stream, microsecond, text) than the fetch brought so far: a multiset
    difference, exact even for identical lines at the same instant.

    Keys are (stream, microseconds since the epoch, the text as COPY text): the form the
    collector makes its rows in (`apps/logs/rows.py`). `upto_us` is the largest time
    among them (-1: none), so a run of lines all after it is new without a look-up.
    """

    ns: int = 0
    seen: Counter = field(default_factory=Counter)
    upto_us: int = -1

    @classmethod
    def resume(cls, source: LogSource, start_ns: int = 0) -> Cursor:
        """The stored lines of the overlap window; from `start_ns` on when no fetched line
        is older (a tail read knows): after a burst, the window can hold a second's
        worth of a busy container's lines, read again on every pass otherwise."""
        seen: Counter = Counter()
        if source.cursor_ns:
            start = max(window_start(source.cursor_ns), start_ns - start_ns % 1000)
            stored = LogLine.objects.filter(
                tenant_id=source.tenant_id,  # leads the (tenant, ts) index
                source=source,
                ts__gte=as_datetime(start),
            ).values_list("stream", "ts", "text")
            seen.update(
                (stream, (ts - EPOCH) // MICROSECOND, store.escape(text.encode()))
                for stream, ts, text in stored.iterator()
            )
        return cls(source.cursor_ns, seen, max((key[1] for key in seen), default=-1))

    def admit(self, ns: int, key: tuple) -> bool:
        if ns <= self.ns and self.seen[key] > 0:
            self.seen[key] -= 1
            return False
        self.ns = max(self.ns, ns)
        return True


# --- one pass -------------------------------------------------------------------------


@dataclass
class PassResult:
    """What a host pass did, for the task's log line, the tests and the benchmark."""

    sources: int = 0
    collected: int = 0
    lines: int = 0
    skipped: int = 0
    #: stopped containers whose whole log a pass already stored: not read again
    ended: int = 0
    errors: list[str] = field(default_factory=list)


def collect_host(host_id: int, *, only: Iterable[str] | None = None) -> PassResult:
    """One pass over a host: register its containers, then collect each one's new lines.

    `only` limits the pass to those engine ids (tests and the benchmark).
    """
    result = PassResult()
    host = Host.objects.filter(pk=host_id, state=Host.State.ACTIVE).first()
    if host is None:
        return result
    engine = log_engine(host)
    try:
        return _collect_host(host, engine, only, result)
    finally:
        engine.close()


def log_engine(host: Host) -> EngineDriver | SwarmTaskLogs:
    """What a pass reads a host's logs through: its engine, or for a Swarm cluster its
    tasks on every node (apps/hosts/engine/swarm_logs.py: a task's node's own engine
    where Berth reaches it, else the manager's task log endpoint)."""
    return swarm_task_logs(host) if host.is_swarm else get_engine(host)


def _collect_host(
    host: Host, engine: EngineDriver | SwarmTaskLogs, only: Iterable[str] | None, result: PassResult
) -> PassResult:
    try:
        listed = engine.list_managed()
    except EngineError as exc:
        result.errors.append(str(exc))
        return result
    register(host, listed)
    wanted = set(only) if only is not None else None
    sources = LogSource.objects.filter(host=host, gone_at__isnull=True)
    if wanted is not None:
        sources = sources.filter(engine_id__in=wanted)
    sources = list(sources.order_by("pk"))
    threads = max(1, min(settings.BERTH_LOG_COLLECT_THREADS, len(sources)))
    if connection.vendor == "sqlite":
        threads = 1  # one writer at a time anyway: the others would only wait for the lock
    by_id = {container.id: container for container in listed}
    with ThreadPoolExecutor(threads, thread_name_prefix="berth-log-collect") as pool:
        outcomes = pool.map(_collect_in_thread(engine, by_id), sources)
        for source, outcome in zip(sources, outcomes, strict=True):
            result.sources += 1
            if isinstance(outcome, EngineError):
                result.errors.append(f"{source}: {outcome}")
            elif outcome is None:
                result.skipped += 1
            elif outcome is ENDED:
                result.ended += 1
            else:
                result.collected += 1
                result.lines += outcome
    return result


#: What a source's pass returns when its container has stopped and its whole log is
#: stored already.
ENDED = "ended"
#: Container states in which nothing writes to the log any more.
STOPPED_STATES = frozenset({"exited", "dead"})


def _collect_in_thread(
    engine: EngineDriver | SwarmTaskLogs, listed: dict[str, ManagedContainer]
) -> Callable[[LogSource], int | str | EngineError | None]:
    """Containers are collected a few at once (BERTH_LOG_COLLECT_THREADS; one on SQLite):
    one container's pass waits on the engine, then on the database, and leaves a core idle
    meanwhile.
    Each thread's database connection is closed when its container is done."""

    def run(source: LogSource) -> int | str | EngineError | None:
        try:
            # Listed by this pass, unless another pass registered it meanwhile.
            container = listed.get(source.engine_id)
            ended = ended_run(engine, container) if container is not None else ""
            if ended and ended == source.ended:
                return ENDED
            return collect_source(engine, source, ended=ended)
        except EngineError as exc:
            return exc
        finally:
            connection.close()

    return run


def ended_run(engine: EngineDriver | SwarmTaskLogs, container: ManagedContainer) -> str:
    """Which run of a stopped container ended ("" while it may still write).

    A stopped container's log is complete: one pass reads it to the end and records the
    run (`LogSource.ended`); later passes skip it instead of making the engine scan the
    whole file again on every pass, for as long as the container stays stopped. A Swarm
    task never runs again once it has ended. An engine container can be started again
    (a restart policy, `docker start`): its StartedAt (one inspect call, much cheaper
    than a logs call) tells a new run, which is read again."""
    if container.state not in STOPPED_STATES:
        return ""
    if isinstance(engine, SwarmTaskLogs):
        return "task"
    status = engine.inspect_container(container.id)
    if status.state not in STOPPED_STATES or not status.started_at:
        return ""
    return f"run {status.started_at}"[:64]


def register(host: Host, listed: list[ManagedContainer]) -> None:
    """A LogSource for each listed container that belongs to a known environment; the
    sources of containers no longer listed are marked gone (their lines stay)."""
    now = timezone.now()
    known = set(LogSource.objects.filter(host=host).values_list("engine_id", flat=True))
    new = [c for c in listed if c.id not in known]
    rows = _sources_for(host, new)
    if rows:
        LogSource.objects.bulk_create(rows, ignore_conflicts=True)
    listed_ids = {c.id for c in listed}
    gone = LogSource.objects.filter(host=host, gone_at__isnull=True).exclude(
        engine_id__in=listed_ids
    )
    gone.update(gone_at=now)
    LogSource.objects.filter(host=host, gone_at__isnull=False, engine_id__in=listed_ids).update(
        gone_at=None
    )


def _sources_for(host: Host, listed: list[ManagedContainer]) -> list[LogSource]:
    """Sources for containers whose tenant and environment labels name one of ours."""
    owners = {}
    for container in listed:
        try:
            env_id = int(container.labels.get(naming.ENVIRONMENT_ID, ""))
            tenant_id = int(container.labels.get(naming.TENANT_ID, ""))
            stack_id = int(container.labels.get(naming.STACK, "0") or 0)
        except ValueError:
            continue
        owners[container.id] = (env_id, tenant_id, stack_id)
    envs = set(
        Environment.objects.filter(pk__in={o[0] for o in owners.values()}).values_list(
            "pk", "tenant_id"
        )
    )
    stacks = dict(
        Stack.objects.filter(pk__in={o[2] for o in owners.values()}).values_list("pk", "name")
    )
    rows = []
    for container in listed:
        env_id, tenant_id, stack_id = owners.get(container.id, (0, 0, 0))
        if (env_id, tenant_id) not in envs:
            continue  # another installation's database, or a forged label
        rows.append(
            LogSource(
                host=host,
                engine_id=container.id,
                tenant_id=tenant_id,
                environment_id=env_id,
                stack_pk=stack_id,
                stack=stacks.get(stack_id, ""),
                service=container.labels.get(naming.SERVICE, ""),
                container=container.name.lstrip("/"),
            )
        )
    return rows


# --- one container --------------------------------------------------------------------


def claim(source_id: int) -> str | None:
    """Take the container's lease; None when another pass holds it."""
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    until = now + timedelta(seconds=settings.BERTH_LOG_LEASE_SECONDS)
    taken = (
        LogSource.objects.filter(pk=source_id)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_by=token, claimed_until=until)
    )
    return token if taken else None


def release(source_id: int, token: str) -> None:
    LogSource.objects.filter(pk=source_id, claimed_by=token).update(
        claimed_by="", claimed_until=None
    )


def collect_source(
    engine: EngineDriver, source: LogSource, *, final: bool = False, ended: str = ""
) -> int | None:
    """Store the container's lines since its cursor; the number stored, None when another
    pass holds the container. `final`: the container has stopped and is about to be
    removed: read to the end, with no settle time and no cap. `ended`: the stopped run
    (`ended_run`): no settle time, and the run is recorded once its log is stored to
    the end."""
    token = claim(source.pk)
    if token is None:
        return None
    try:
        return _collect(engine, source, token, final=final, ended=ended)
    finally:
        release(source.pk, token)


def _collect(
    engine: EngineDriver, source: LogSource, token: str, *, final: bool = False, ended: str = ""
) -> int:
    # A stopped container's log is complete: no settle time. A periodic pass keeps its
    # cap even then (a huge log is read over several passes, `ended` set at its end).
    complete = final or bool(ended)
    until_ns = time.time_ns() - (0 if complete else int(settings.BERTH_LOG_SETTLE_SECONDS * NS))
    if source.cursor_ns and until_ns <= source.cursor_ns:
        return 0
    reader: Any = None
    if source.cursor_ns and not isinstance(engine, SwarmTaskLogs):
        reader = read_tail(engine, source, window_start(source.cursor_ns), until_ns)
    if reader is None:
        reader = engine.logs(
            source.engine_id,
            follow=False,
            tail="all",
            since=engine_instant(window_start(source.cursor_ns)) if source.cursor_ns else None,
            until=engine_instant(until_ns),
            tty=source.tty,
        )
    cursor = Cursor.resume(source, getattr(reader, "oldest_ns", 0))
    stored = 0
    started_from = source.cursor_ns
    batches = _batches(reader.runs(), RowMaker(source, cursor))
    ahead = Prefetch(batches, on_stop=reader.close)
    whole = True
    try:
        for batch, count, batch_end in ahead:
            if not commit(source, token, started_from, batch, batch_end):
                whole = False
                break  # another pass took over: it stores from here
            started_from = batch_end
            stored += count
            if stored >= settings.BERTH_LOG_MAX_LINES_PER_PASS and not final:
                whole = False
                break
    finally:
        ahead.stop()
    if source.tty is None and getattr(reader, "tty", None) is not None:
        LogSource.objects.filter(pk=source.pk).update(tty=reader.tty)
    done: dict[str, Any] = {"collected_at": timezone.now()}
    if whole:  # read to its end: the stopped run is stored, or a running one is not ended
        done.update(ended=ended, read_until_ns=until_ns)
    LogSource.objects.filter(pk=source.pk, claimed_by=token).update(**done)
    return stored


def read_tail(
    engine: EngineDriver, source: LogSource, since_ns: int, until_ns: int
) -> TailWindow | None:
    """The log's new lines read from its end, or None when its last lines do not reach
    back far enough (read it with `since` then).

    The engine's json-file reader finds `since` by decoding the whole file from its
    start, so a pass over a container with a large log cost the engine the whole file
    every time even when nothing was new (about 0.6 s per 100,000 lines here, for each
    idle container on each pass). Its `tail` reads backwards from the end instead. So a
    resumed pass first asks for the last BERTH_LOG_TAIL_LINES lines (no `since`, no
    `until`) and keeps those in [since, until] itself. That is the whole answer when the
    tail is the whole log, or when its first line is older, by more than the settle
    time, than the `until` of the last read that stored everything up to it
    (`read_until_ns`): every line before it in the file reached the file within the
    settle time of its own time (the assumption the cursor rests on), so it is older
    than that `until`, and stored. A container that wrote more than the tail holds
    since the last pass is read with `since` as before."""
    lines = settings.BERTH_LOG_TAIL_LINES
    if lines <= 0 or not source.read_until_ns:
        return None
    reader = engine.logs(
        source.engine_id, follow=False, tail=str(lines), since=None, until=None, tty=source.tty
    )
    try:
        runs = list(reader.runs())
    finally:
        reader.close()
    known = source.read_until_ns - int(settings.BERTH_LOG_SETTLE_SECONDS * NS)
    window = TailWindow(runs, since_ns, until_ns, known, getattr(reader, "tty", None))
    # Far fewer lines than asked for: the tail is the whole log. (Half, not all: each
    # line here is one engine message, but the bound costs nothing to keep wide.)
    return window if window.reaches_back or window.lines * 2 <= lines else None


class TailWindow:
    """The lines of a log's tail within [since, until] (inclusive, as the engine's own
    `since` and `until`), as runs of raw lines; a piece of an over-long line (no time of
    its own) goes with the line before it. `reaches_back`: the tail's first line is not
    newer than `known` (see `read_tail`); `lines`: how many lines the tail had."""

    def __init__(
        self,
        runs: list[list[tuple[str, bytes]]],
        since_ns: int,
        until_ns: int,
        known: int,
        tty: bool | None,
    ) -> None:
        self.tty = tty
        self.reaches_back = False
        self.lines = 0  # in the tail, in the window or not
        self.oldest_ns = until_ns + 1  # the oldest line kept (none: past until)
        self._runs: list[list[tuple[str, bytes]]] = []
        first, keep = True, False
        for batch in runs:
            kept = []
            for name, run in batch:
                chosen = []
                raws = run.split(b"\n")[:-1]
                self.lines += len(raws)
                for raw in raws:
                    ns = rfc3339_ns(parse_line(name, raw).ts)
                    if ns is not None:
                        if first:
                            self.reaches_back, first = ns <= known, False
                        keep = since_ns <= ns <= until_ns
                        if keep:
                            self.oldest_ns = min(self.oldest_ns, ns)
                    if keep:
                        chosen.append(raw)
                if chosen:
                    kept.append((name, b"\n".join(chosen) + b"\n"))
            if kept:
                self._runs.append(kept)

    def runs(self) -> Iterator[list[tuple[str, bytes]]]:
        yield from self._runs

    def close(self) -> None:
        """Read already."""


def _batches(
    reads: Iterator[list[tuple[str, bytes]]], rows: RowMaker
) -> Iterator[tuple[bytes, int, int]]:
    """The admitted lines in groups of BERTH_LOG_BATCH_LINES (COPY text, how many), each
    group a transaction of its own, with the cursor as it stands after the group's last
    line. A run longer than the room left in a group is cut at a line."""
    size = settings.BERTH_LOG_BATCH_LINES
    parts: list[bytes] = []
    count = 0
    for runs in reads:
        for stream, run in runs:
            while run:
                head, run = split_lines(run, size - count)
                text, made = rows.rows(stream, head)
                if made:
                    parts.append(text)
                    count += made
                if count >= size:
                    yield b"".join(parts), count, rows.cursor.ns
                    parts, count = [], 0
    if count:
        yield b"".join(parts), count, rows.cursor.ns


class Prefetch:
    """Runs `source` in a thread, one batch ahead of the consumer, so reading and
    parsing the engine's log overlaps with writing the previous batch to the database
    (each alone left the other idle: a pass took their sum). The thread touches no
    database. `stop()` (from the consumer, also after an error) calls `on_stop` (which
    closes the engine stream) and ends the thread."""

    DONE = object()

    def __init__(self, source: Iterator, on_stop: Callable[[], None], depth: int = 2) -> None:
        self.source = source
        self.on_stop = on_stop
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="berth-log-fetch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.source:
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(("error", exc))

    def _put(self, entry: tuple) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            kind, value = self.queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value

    def stop(self) -> None:
        self.stopped.set()
        self.on_stop()
        self.thread.join(timeout=10)


def commit(source: LogSource, token: str, started_from: int, batch: bytes, batch_end: int) -> bool:
    """Insert `batch` (COPY text, `store.insert`) and move the cursor past it, in one
    transaction, only if the locked source row still has this pass's lease and the
    cursor the batch was fetched after. The lock also stands for the lines' foreign key
    (see LogLine.source): the source exists, and cannot go before this commits."""
    with transaction.atomic():
        row = (
            LogSource.objects.select_for_update()
            .filter(pk=source.pk, claimed_by=token)
            .values_list("cursor_ns", flat=True)
            .first()
        )
        if row is None or row != started_from:
            return False
        store.insert(batch)
        renewed = timezone.now() + timedelta(seconds=settings.BERTH_LOG_LEASE_SECONDS)
        LogSource.objects.filter(pk=source.pk).update(cursor_ns=batch_end, claimed_until=renewed)
    return True


def collect_all() -> list[int]:
    """The hosts a pass is due on: every active one, engines and Swarm clusters."""
    hosts = Host.objects.filter(state=Host.State.ACTIVE)
    return list(hosts.values_list("pk", flat=True))


def collect_before_removal(host: Host, engine: EngineDriver, engine_id: str) -> int | None:
    """Take what a container's log holds since the last pass, just before Berth removes
    it (`container_removing`): the lines a container writes as it stops (often the ones
    that say why) come after the last periodic pass, and would be lost with it.

    A container no pass has seen yet gets its source now (one filtered list call). When
    a periodic pass holds the container, this waits for its lease a few seconds. The
    number of lines stored, None when nothing could be done."""
    if host.is_swarm:
        return None
    source = LogSource.objects.filter(host=host, engine_id=engine_id).first()
    if source is None:
        rows = _sources_for(host, engine.list_managed_ids([engine_id]))
        if not rows:
            return None  # not one of this installation's environments' containers
        LogSource.objects.bulk_create(rows, ignore_conflicts=True)
        source = LogSource.objects.get(host=host, engine_id=engine_id)
    deadline = time.monotonic() + FINAL_LEASE_WAIT_SECONDS
    while True:
        stored = collect_source(engine, source, final=True)
        if stored is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)
        source.refresh_from_db()


#: How long a removal waits for a periodic pass that holds the container's lease.
FINAL_LEASE_WAIT_SECONDS = 5
