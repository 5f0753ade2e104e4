"""The log collector's engine for a Swarm cluster host: its tasks' logs, on every node.

`SwarmTaskLogs` stands where a single engine stands for the collector: `list_managed`
lists this installation's tasks (one call to the manager) as containers whose id is the
task id (as Berth's Container rows address a task) and whose labels are the task's
owner labels; `logs(task_id, since=..., until=...)` reads one task's log.

Which way a task's log is read (measured on docker.io 20.10, API 1.41, a 3-node swarm
in network namespaces): both ways give the same lines, in the same order, with the same
nanosecond timestamps, and both take `since` exactly to the nanosecond, inclusive, as a
container's log does; so the collector's cursor (apps/logs/collector.py) works with
either, and a task may move from one to the other between passes.

- Through its node's own engine (`GET /containers/{id}/logs`), when a platform admin gave
  the node an engine endpoint and, in this pass, that engine proved to be the node (its
  `docker info` Swarm NodeID) and the container the task's (its task id, node and owner
  labels): exact `until` too, about twice as fast (200,000 lines: 3.5-4.2 s against
  6.1-9.3 s through the manager; tests/perf/bench_swarm_task_logs.py) and no load on
  the manager.
- Through the manager (`GET /tasks/{id}/logs`), for every other task: it ignores `until`
  (it answers up to the log's end), so `until` is applied here, line by line; an error
  the manager reports inside the stream (a down node: "Error grabbing logs: ... node ...
  is not available", a frame of stream 3 in an answer of 200) is raised as an
  EngineError instead of being read as a line. A task whose container was removed
  answers an empty log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from apps.hosts.engine.client import DockerEngine
from apps.hosts.engine.driver import ManagedContainer
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.streams import STREAM_NAMES, _Demultiplexer, parse_line
from apps.hosts.engine.swarm import (
    ManagedTask,
    NodeEngine,
    SwarmCluster,
    TaskLogStream,
    node_engines_of,
    node_task_containers,
    open_checked_node_engine,
    swarm_cluster,
)

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: Task states whose container has (or had) a log.
WITH_LOG = {"starting", "running", "complete", "failed", "shutdown", "orphaned", "remove"}


class SwarmTaskLogs:
    """A cluster's task logs for the log collector (see the module docstring). Not
    thread-bound: `list_managed` runs first, then `logs` from a few threads at once."""

    def __init__(self, cluster: SwarmCluster, nodes: Iterable[NodeEngine]) -> None:
        self.cluster = cluster
        self.nodes = [n for n in nodes if n.endpoint]
        self.engines: list[DockerEngine] = []
        #: task id -> (the node's engine, the task's container id there)
        self.routes: dict[str, tuple[DockerEngine, str]] = {}
        #: why a node's tasks are read through the manager this pass
        self.problems: list[str] = []

    def list_managed(self) -> list[ManagedContainer]:
        tasks = [t for t in self.cluster.list_managed_tasks() if t.container_id]
        tasks = [t for t in tasks if t.state in WITH_LOG]
        self._route(tasks)
        return [_as_container(t) for t in tasks]

    def _route(self, tasks: list[ManagedTask]) -> None:
        """The tasks on nodes whose engine Berth reaches, read there: per such node one
        identity call and one list call."""
        if not self.nodes:
            return
        wanted = {t.node_id for t in tasks} - {self.cluster._endpoint_node()}
        for node in self.nodes:
            if node.node_id not in wanted:
                continue
            try:
                engine = open_checked_node_engine(node, timeout=self.cluster.timeout)
            except EngineError as exc:
                self.problems.append(f"node {node.name}: {exc.message}")
                continue
            self.engines.append(engine)
            try:
                found, refused = node_task_containers(engine.list_managed(), tasks, node.node_id)
            except EngineError as exc:
                self.problems.append(f"node {node.name}: {exc.message}")
                continue
            self.problems += [f"node {node.name}: {r}" for r in refused]
            for task_id, container in found.items():
                self.routes[task_id] = (engine, container.id)
        if self.problems:
            log.info("swarm logs through the manager: %s", "; ".join(self.problems))

    def logs(
        self,
        container_id: str,
        *,
        follow: bool = False,
        tail: str = "all",
        since: float | str | None = None,
        until: str | None = None,
        tty: bool | None = None,
    ) -> Any:
        """Task `container_id`'s log (non-following), through its node's engine when
        routed there, else through the manager with `until` applied here."""
        route = self.routes.get(container_id)
        if route is not None:
            engine, container = route
            return engine.logs(
                container, follow=False, tail=tail, since=since, until=until, tty=tty
            )
        stream = CollectedTaskLogStream(
            self.cluster, container_id, follow=False, tail=tail, since=since, tty=tty
        )
        return UntilReader(stream, until)

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
        self.engines = []
        self.cluster.close()


class _StrictDemultiplexer(_Demultiplexer):
    """Frames of stream 3 (the engine's own error) raised, not read as lines."""

    names = {**STREAM_NAMES, 3: "systemerr"}

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        frames = super().feed(chunk)
        for name, payload in frames:
            if name == "systemerr":
                text = payload.decode("utf-8", errors="replace").strip()
                raise EngineError(
                    f"The manager could not read the task's log: {text}", retryable=True
                )
        return frames


class CollectedTaskLogStream(TaskLogStream):
    """A task's log through the manager for the collector: the task was just listed
    with this installation's label (no second ownership check), errors raised."""

    def _check(self) -> None:
        """Listed by `list_managed_tasks`, filtered by this installation's label."""

    def _demultiplexer(self) -> _Demultiplexer:
        return _StrictDemultiplexer()


class UntilReader:
    """A log reader keeping only lines up to `until` ("<seconds>.<nanoseconds>",
    inclusive, as the engine's own `until`); a piece of an over-long line (no timestamp)
    goes with the line before it."""

    def __init__(self, reader: Any, until: str | None) -> None:
        self.reader = reader
        self.until_ns = _instant_ns(until) if until is not None else None
        self._keep = True  # whether the last line with a time was in

    @property
    def tty(self) -> bool | None:
        return self.reader.tty

    def _within(self, ts: str) -> bool:
        """Whether a line with the engine time `ts` is in ("": a piece, as the line
        before it)."""
        ns = rfc3339_ns(ts) if ts else None
        if ns is not None:
            self._keep = ns <= self.until_ns
        return self._keep

    def batches(self, opened: Any = None) -> Iterator[list[Any]]:
        if self.until_ns is None:
            yield from self.reader.batches(opened)
            return
        for batch in self.reader.batches(opened):
            kept = [line for line in batch if self._within(line.ts)]
            if kept:
                yield kept

    def runs(self, opened: Any = None) -> Iterator[list[tuple[str, bytes]]]:
        """The same as runs of raw lines (what the log collector reads)."""
        if self.until_ns is None:
            yield from self.reader.runs(opened)
            return
        for runs in self.reader.runs(opened):
            kept = []
            for name, run in runs:
                raws = run.split(b"\n")[:-1]
                raws = [raw for raw in raws if self._within(parse_line(name, raw).ts)]
                if raws:
                    kept.append((name, b"\n".join(raws) + b"\n"))
            if kept:
                yield kept

    def close(self) -> None:
        self.reader.close()


def _as_container(task: ManagedTask) -> ManagedContainer:
    """The task in a container's terms: "running", "created" while it starts (it will
    write), "exited" once it ended (it never runs again: Swarm starts a new task)."""
    state = {"running": "running", "starting": "created"}.get(task.state, "exited")
    return ManagedContainer(
        id=task.task_id, name=task.name, image="", state=state, status="", labels=task.labels
    )


def _instant_ns(value: str) -> int:
    seconds, _, fraction = value.partition(".")
    return int(seconds) * NS + int((fraction or "0").ljust(9, "0")[:9])


def rfc3339_ns(ts: str) -> int | None:
    """The engine's RFC 3339 UTC time (up to nanoseconds) as nanoseconds; None if not one."""
    if len(ts) < 20 or not ts.endswith("Z"):
        return None
    head, _, fraction = ts[:-1].partition(".")
    seconds = _seconds(head)
    if seconds is None or (fraction and not fraction.isdigit()):
        return None
    return seconds * NS + (int(fraction.ljust(9, "0")[:9]) if fraction else 0)


@lru_cache(maxsize=1024)
def _seconds(head: str) -> int | None:
    try:
        return int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def swarm_task_logs(host: Any) -> SwarmTaskLogs:
    """The collector's engine for a Swarm cluster host (no I/O yet)."""
    return SwarmTaskLogs(swarm_cluster(host), node_engines_of(host))
