"""The metrics collector: one pass samples every container of this installation on every
reachable host, each host's totals, and the frontier's routes, and writes one row per
object (`collect`, run by beat every BERTH_METRICS_INTERVAL_SECONDS).

Engine cost per host and pass: the connection's version probe, one list call, one
events call (restarts since the last pass; it ends by itself) and one one-shot stats
call per running container, in a bounded thread pool (BERTH_METRICS_THREADS per host,
hosts side by side); no stream stays open. The engine work runs in threads that touch no
database; the writes happen afterwards in the calling thread, a fixed number of queries
for all hosts together (plus one per container that restarted).

A Swarm cluster host is sampled on each node whose engine Berth reaches: the manager's
node through the host's own engine, as a single engine; every other ready node with an
engine endpoint (apps/hosts/models.SwarmNode: set by a platform admin, still passing the
heartbeat's check) through that engine, once it proved in this pass to be that node (its
`docker info` Swarm NodeID: one call) and only for the containers carrying the id, node
and owner labels of one of this installation's tasks there (the manager's task list:
one more call per cluster). Then the same list, events and stats calls per node, nodes
side by side (at most four). The tasks on the other nodes are not measured, and the pass
says which nodes and why (`PassResult.unmeasured`, `SwarmNode.engine_gap` on the pages);
the host's totals cover the nodes measured (their CPUs and memory too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Max
from django.utils import timezone

from apps.deployments import containers as naming
from apps.deployments.models import Container, Route, Stack
from apps.hosts.engine import EngineDriver, EngineError, ManagedContainer, SwarmCluster, get_engine
from apps.hosts.engine.swarm import (
    ManagedTask,
    node_engine_of,
    node_task_containers,
    open_checked_node_engine,
)
from apps.hosts.models import Host, SwarmNode
from apps.monitoring import disk, tiers
from apps.monitoring.models import ContainerSample, HostSample, RouteSample, Series
from apps.traffic import runtime

log = logging.getLogger(__name__)

SWARM_TASK_LABEL = "com.docker.swarm.task.id"
# pg_advisory_lock key of the collector's pass (the frontier's apply has its own).
ADVISORY_KEY = int.from_bytes(b"berthmet", "big") & 0x7FFF_FFFF_FFFF_FFFF
HEALTH = {
    "": ContainerSample.Health.NONE,
    "starting": ContainerSample.Health.STARTING,
    "healthy": ContainerSample.Health.HEALTHY,
    "unhealthy": ContainerSample.Health.UNHEALTHY,
}


@dataclass
class Observed:
    """What one host's engine said in this pass (filled in a worker thread)."""

    host: Host
    listed: list[ManagedContainer] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    engine_calls: int = 0
    since: datetime | None = None
    # a Swarm cluster: the nodes measured, the others and why, and the size of the former
    measured: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)
    cpus: int | None = None
    memory_bytes: int | None = None


@dataclass
class PassResult:
    """Figures of one pass (logged; printed by the benchmark)."""

    hosts: int = 0
    unreachable: list[str] = field(default_factory=list)
    # Swarm nodes whose tasks were not measured, and why ("node w2 has no engine endpoint")
    unmeasured: list[str] = field(default_factory=list)
    containers: int = 0
    sampled: int = 0
    engine_calls: int = 0
    rows: int = 0
    routes: int = 0
    seconds: float = 0.0
    skipped: bool = False


def collect(now: datetime | None = None) -> PassResult:
    """One pass over every active (or draining) host and the frontier. Passes never
    overlap: one that finds another running returns at once (`skipped`), since both
    would count the same restarts; a second pass in the same second writes nothing
    (rows are unique per second)."""
    with _sole_pass() as sole:
        if not sole:
            return PassResult(skipped=True)
        return _collect(now)


@contextmanager
def _sole_pass() -> Iterator[bool]:
    """A PostgreSQL advisory lock held for the pass (released with the connection if
    the worker dies); SQLite, the embedded default, has one worker and needs none."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_KEY])


def _collect(now: datetime | None) -> PassResult:
    started = time.monotonic()
    now = (now or timezone.now()).replace(microsecond=0)
    result = PassResult()
    # A draining host still runs its containers; an unreachable one is the heartbeat's.
    live = (Host.State.ACTIVE, Host.State.DRAINING)
    hosts = list(Host.objects.filter(state__in=live).order_by("pk"))
    observed = observe_hosts(hosts, now)
    result.hosts = len(hosts)
    for obs in observed:
        result.engine_calls += obs.engine_calls
        if obs.error:
            result.unreachable.append(f"{obs.host.name}: {obs.error}")
        result.unmeasured += [f"{obs.host.name}: {gap}" for gap in obs.unmeasured]
    write_containers(observed, now, result)
    write_routes(now, result)
    result.seconds = time.monotonic() - started
    return result


# --- engine side: threads, no database ----------------------------------------------------


def observe_hosts(hosts: list[Host], now: datetime) -> list[Observed]:
    """Every host's listing, restarts and stats, hosts side by side (bounded)."""
    if not hosts:
        return []
    since = last_passes(hosts, now)
    nodes = _swarm_nodes(hosts)
    with ThreadPoolExecutor(max_workers=min(len(hosts), 4)) as pool:
        return list(
            pool.map(lambda h: observe_host(h, since[h.pk], now, nodes.get(h.pk, [])), hosts)
        )


def _swarm_nodes(hosts: list[Host]) -> dict[int, list[SwarmNode]]:
    """The present nodes of the Swarm cluster hosts (one query), read before the
    threads start: they touch no database."""
    found: dict[int, list[SwarmNode]] = {}
    swarms = [h.pk for h in hosts if h.is_swarm]
    if swarms:
        for node in SwarmNode.objects.filter(host_id__in=swarms, gone_at__isnull=True):
            found.setdefault(node.host_id, []).append(node)
    return found


def last_passes(hosts: list[Host], now: datetime) -> dict[int, datetime]:
    """Where each host's restart count starts: its previous pass (its newest host row),
    so that passes late or early neither miss nor count twice a start; one interval
    back for a host's first pass, at most three back after a pause (one query)."""
    oldest = now - timedelta(seconds=interval() * 3)
    found = dict(
        HostSample.objects.filter(
            tier=0,
            at__gte=oldest,
            at__lt=now,
            series__kind=Series.Kind.HOST,
            series__host_pk__in=[h.pk for h in hosts],
        )
        .values("series__host_pk")
        .annotate(last=Max("at"))
        .values_list("series__host_pk", "last")
    )
    first = now - timedelta(seconds=interval())
    return {h.pk: found.get(h.pk, first) for h in hosts}


def observe_host(
    host: Host, since: datetime, now: datetime, nodes: list[SwarmNode] | None = None
) -> Observed:
    """One host's containers through its engine; for a Swarm cluster, also those of the
    tasks on each other node whose engine Berth reaches (`nodes`: its SwarmNode rows)."""
    obs = Observed(host=host, since=since)
    engine = get_engine(host)
    try:
        sample(engine, obs, engine.list_managed(), now)
        if isinstance(engine, SwarmCluster):
            observe_nodes(engine, obs, nodes or [], now)
    except EngineError as exc:
        obs.error = str(exc)
        log.warning("metrics: host %s not sampled: %s", host.name, exc)
    finally:
        obs.engine_calls += engine.api_calls
        engine.close()
    return obs


def sample(
    engine: EngineDriver, obs: Observed, listed: list[ManagedContainer], now: datetime
) -> None:
    """Restarts and one-shot stats of `listed` (containers on `engine`) into `obs`."""
    since = (obs.since or now).timestamp()
    ids = {c.id for c in listed}
    obs.listed += listed
    starts = engine.container_starts(since, now.timestamp())
    obs.starts.update((cid, count) for cid, count in starts.items() if cid in ids)
    running = [c.id for c in listed if c.state == "running"]
    if running:
        threads = max(1, min(settings.BERTH_METRICS_THREADS, len(running)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for cid, stats in zip(
                running, pool.map(lambda c: _stats(engine, c), running), strict=True
            ):
                if stats is not None:
                    obs.stats[cid] = stats


def observe_nodes(
    cluster: SwarmCluster, obs: Observed, nodes: list[SwarmNode], now: datetime
) -> None:
    """The tasks on the cluster's other nodes, each through its own engine (see the
    module docstring); which nodes were measured, which not and why, and their size."""
    own = [n for n in nodes if n.is_endpoint and not n.engine_gap]
    reached = [n for n in nodes if not n.is_endpoint and not n.engine_gap]
    obs.unmeasured += [n.engine_gap for n in nodes if n.engine_gap]
    obs.measured += [n.name for n in own]
    if reached:
        try:
            tasks = cluster.list_managed_tasks()
        except EngineError as exc:  # the manager's own node is still measured
            obs.unmeasured += [f"node {n.name}: {exc}" for n in reached]
            reached = []
    if reached:
        with ThreadPoolExecutor(max_workers=min(len(reached), 4)) as pool:
            found = list(pool.map(lambda n: _observe_node(n, obs, tasks, now), reached))
        for node, part in zip(reached, found, strict=True):
            obs.engine_calls += part.engine_calls
            if part.error:
                obs.unmeasured.append(f"node {node.name}: {part.error}")
                continue
            obs.measured.append(node.name)
            obs.listed += part.listed
            obs.starts.update(part.starts)
            obs.stats.update(part.stats)
    measured = [n for n in nodes if n.name in obs.measured]
    if measured:
        obs.cpus = round(sum(n.cpus or 0 for n in measured))
        obs.memory_bytes = sum(n.memory_bytes or 0 for n in measured)


def _observe_node(
    node: SwarmNode, obs: Observed, tasks: list[ManagedTask], now: datetime
) -> Observed:
    """One node's task containers through its own engine (checked to be the node)."""
    part = Observed(host=obs.host, since=obs.since)
    engine = None
    try:
        engine = open_checked_node_engine(node_engine_of(node))
        listed, refused = node_task_containers(engine.list_managed(), tasks, node.node_id)
        for reason in refused:
            log.warning("metrics: node %s: not measured: %s", node.name, reason)
        sample(engine, part, list(listed.values()), now)
    except EngineError as exc:
        part.error = str(exc)
        log.warning("metrics: node %s of %s not sampled: %s", node.name, obs.host.name, exc)
    finally:
        if engine is not None:
            part.engine_calls = engine.api_calls
            engine.close()
    return part


def _stats(engine: EngineDriver, container_id: str) -> dict[str, Any] | None:
    """One container's sample; None when it stopped or went meanwhile."""
    try:
        sample = engine.stats_once(container_id)
    except EngineError as exc:
        if not exc.not_found:
            log.info("metrics: no stats for %s: %s", container_id[:12], exc)
        return None
    return sample if sample.get("measured") else None


# --- database side -----------------------------------------------------------------------


def write_containers(observed: list[Observed], now: datetime, result: PassResult) -> None:
    """Rows of every running container (and of one that stopped or restarted since the
    last pass: a stopped container's series gets no row while nothing changes), and a
    host row per reachable host."""
    reachable = [obs for obs in observed if not obs.error]
    specs, creatable = _container_specs(reachable)
    series = ensure_series(specs, now, creatable)
    previous = _previous(ContainerSample, series.values(), now, ("cpu_ns", *COUNTERS))
    samples: list[ContainerSample] = []
    hosts: list[HostSample] = []
    restarted: dict[int, int] = {}
    disks = disk_figures([obs.host.pk for obs in reachable], now)
    for obs in reachable:
        total = _empty_total(obs)
        since = (obs.since or now).timestamp()
        for item in obs.listed:
            sid = series.get(f"c{obs.host.pk}:{item.id}")
            stats, before = obs.stats.get(item.id), previous.get(sid)
            count = tiers.restarts(obs.starts.get(item.id, 0), item.created, since)
            if sid is None or (stats is None and not count and before is None):
                continue
            sample = _container_sample(sid, item, stats, before, now)
            sample.restarts = count
            samples.append(sample)
            _add_to_total(total, sample, before, now)
            if count:
                restarted[sid] = count
        host_sample = _host_sample(series[f"h{obs.host.pk}"], total, now)
        host_sample.disk_used_bytes, host_sample.disk_usable_bytes = disks.get(
            obs.host.pk, (None, None)
        )
        hosts.append(host_sample)
    ContainerSample.objects.bulk_create(samples, ignore_conflicts=True)
    HostSample.objects.bulk_create(hosts, ignore_conflicts=True)
    for sid, count in restarted.items():
        Series.objects.filter(pk=sid).update(restarts_total=F("restarts_total") + count)
    result.containers = sum(len(obs.listed) for obs in reachable)
    result.sampled = sum(len(obs.stats) for obs in reachable)
    result.rows += len(samples) + len(hosts)


def disk_figures(host_ids: list[int], now: datetime) -> dict[int, tuple[int, int]]:
    """host id -> (used, used + available) bytes of its data root, from the disk probe's
    newest figures while they stand for the disk now: the host's disk chart repeats them
    between two probes (BERTH_DISK_PROBE_SECONDS) and shows nothing once they are old."""
    rows = (
        disk.fresh_disks(host_ids, now)
        .filter(total_bytes__gt=0)
        .values_list("host_id", "used_bytes", "free_bytes")
    )
    return {host_id: (used, used + free) for host_id, used, free in rows}


def _container_specs(reachable: list[Observed]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The series every listed container and host belongs to (labels as seen now), and
    which of them may be created: a container that never ran has nothing to show."""
    found = [(obs.host, item) for obs in reachable for item in obs.listed]
    stacks = _stacks({_int(item.labels.get(naming.STACK)) for _, item in found})
    rows = _container_rows([obs.host for obs in reachable])
    specs: dict[str, dict[str, Any]] = {}
    creatable: set[str] = set()
    for host, item in found:
        stack = stacks.get(_int(item.labels.get(naming.STACK)))
        if stack is None:  # an orphan Berth is about to remove: no tenant to give it to
            continue
        key = f"c{host.pk}:{item.id}"
        specs[key] = {
            "kind": Series.Kind.CONTAINER,
            "tenant_id": stack["tenant_id"],
            "tenant_slug": stack["tenant__slug"],
            "environment_pk": stack["environment_id"],
            "environment_slug": stack["environment__slug"],
            "stack_pk": stack["pk"],
            "stack_name": stack["name"],
            "service_name": item.labels.get(naming.SERVICE, ""),
            "name": item.name,
            "container_pk": rows.get((host.pk, item.id))
            or rows.get((host.pk, item.labels.get(SWARM_TASK_LABEL, ""))),
            "host_pk": host.pk,
            "host_name": host.name,
        }
        if item.state in ("running", "restarting"):
            creatable.add(key)
    for obs in reachable:
        key = f"h{obs.host.pk}"
        specs[key] = {
            "kind": Series.Kind.HOST,
            "host_pk": obs.host.pk,
            "host_name": obs.host.name,
            "name": obs.host.name,
        }
        creatable.add(key)
    return specs, creatable


COUNTERS = ("net_rx_bytes", "net_tx_bytes", "block_read_bytes", "block_write_bytes")


def _container_sample(
    sid: int,
    item: ManagedContainer,
    stats: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    now: datetime,
) -> ContainerSample:
    if stats is None:
        return ContainerSample(series_id=sid, tier=0, at=now, health=ContainerSample.Health.STOPPED)
    before = (previous["at"], previous["cpu_ns"]) if previous else None
    cpu = tiers.cpu_percent(before, now, stats["cpu_ns"])
    memory = stats["memory"]
    return ContainerSample(
        series_id=sid,
        tier=0,
        at=now,
        cpu_percent=cpu,
        cpu_percent_max=cpu,
        cpu_ns=stats["cpu_ns"],
        memory_bytes=memory["usage"],
        memory_max_bytes=memory["usage"],
        memory_limit_bytes=memory["limit"],
        net_rx_bytes=stats["net"]["rx_bytes"],
        net_tx_bytes=stats["net"]["tx_bytes"],
        block_read_bytes=stats["block"]["read_bytes"],
        block_write_bytes=stats["block"]["write_bytes"],
        health=HEALTH.get(item.health, ContainerSample.Health.NONE),
    )


def _empty_total(obs: Observed) -> dict[str, float]:
    total = dict.fromkeys(("cpu_percent", "memory_bytes", *COUNTERS), 0.0)
    total["containers"] = len(obs.listed)
    total["running"] = sum(1 for c in obs.listed if c.state == "running")
    total["cpus"] = obs.cpus if obs.cpus is not None else obs.host.cpus or 0
    total["memory_total_bytes"] = (
        obs.memory_bytes if obs.memory_bytes is not None else obs.host.memory_bytes or 0
    )
    return total


def _add_to_total(
    total: dict[str, float], sample: ContainerSample, previous: dict[str, Any] | None, now: datetime
) -> None:
    total["cpu_percent"] += sample.cpu_percent or 0.0
    total["memory_bytes"] += sample.memory_bytes
    if previous is None or sample.health == ContainerSample.Health.STOPPED:
        return
    seconds = (now - previous["at"]).total_seconds()
    for name in COUNTERS:
        total[name] += tiers.counter_delta(previous[name], getattr(sample, name)) / seconds


def _host_sample(sid: int, total: dict[str, float], now: datetime) -> HostSample:
    return HostSample(
        series_id=sid,
        tier=0,
        at=now,
        containers=int(total["containers"]),
        running=int(total["running"]),
        cpu_percent=round(total["cpu_percent"], 2),
        cpu_percent_max=round(total["cpu_percent"], 2),
        memory_bytes=int(total["memory_bytes"]),
        memory_max_bytes=int(total["memory_bytes"]),
        cpus=int(total["cpus"]),
        memory_total_bytes=int(total["memory_total_bytes"]),
        net_rx_rate=total["net_rx_bytes"],
        net_tx_rate=total["net_tx_bytes"],
        block_read_rate=total["block_read_bytes"],
        block_write_rate=total["block_write_bytes"],
    )


def write_routes(now: datetime, result: PassResult) -> None:
    """Every route HAProxy serves: its counters from one `show stat`."""
    counters = runtime.route_counters()
    if not counters:
        return
    routes = Route.objects.filter(pk__in=list(counters)).values(
        "pk",
        "tenant_id",
        "tenant__slug",
        "stack_id",
        "stack__name",
        "stack__environment_id",
        "stack__environment__slug",
        "service__name",
        "hostname",
        "path",
    )
    specs = {
        f"r{r['pk']}": {
            "kind": Series.Kind.ROUTE,
            "tenant_id": r["tenant_id"],
            "tenant_slug": r["tenant__slug"],
            "environment_pk": r["stack__environment_id"],
            "environment_slug": r["stack__environment__slug"],
            "stack_pk": r["stack_id"],
            "stack_name": r["stack__name"],
            "service_name": r["service__name"],
            "route_pk": r["pk"],
            "name": f"{r['hostname']}{r['path']}",
        }
        for r in routes
    }
    series = ensure_series(specs, now)
    rows = []
    for key, sid in series.items():
        figures = counters[int(key[1:])]
        rows.append(
            RouteSample(
                series_id=sid,
                tier=0,
                at=now,
                requests=figures["requests"],
                errors=figures["errors"],
                latency_ms=figures["latency_ms"],
                latency_max_ms=figures["latency_ms"],
                sessions=figures["sessions"],
            )
        )
    RouteSample.objects.bulk_create(rows, ignore_conflicts=True)
    result.routes = len(rows)
    result.rows += len(rows)


def ensure_series(
    specs: dict[str, dict[str, Any]], now: datetime, creatable: set[str] | None = None
) -> dict[str, int]:
    """Key -> series id for every spec that has one or may have one (`creatable`, all
    by default), made when missing (labels as first seen), and every one marked seen
    now: two queries, three when some are new."""
    if not specs:
        return {}
    found = dict(Series.objects.filter(key__in=list(specs)).values_list("key", "pk"))
    missing = [k for k in specs if k not in found and (creatable is None or k in creatable)]
    if missing:
        Series.objects.bulk_create(
            [Series(key=k, first_seen_at=now, last_seen_at=now, **specs[k]) for k in missing],
            ignore_conflicts=True,
        )
        found.update(Series.objects.filter(key__in=missing).values_list("key", "pk"))
    Series.objects.filter(pk__in=list(found.values())).update(last_seen_at=now)
    return found


def _previous(
    model: type, series_ids: Iterable[int], now: datetime, fields: tuple[str, ...]
) -> dict[int, dict[str, Any]]:
    """Each series' last raw row before `now` within three intervals (one query)."""
    ids = list(series_ids)
    if not ids:
        return {}
    window = now - timedelta(seconds=interval() * 3)
    rows = (
        model.objects.filter(tier=0, series_id__in=ids, at__gte=window, at__lt=now)
        .exclude(health=ContainerSample.Health.STOPPED)
        .order_by("series_id", "at")
        .values("series_id", "at", *fields)
    )
    return {row["series_id"]: row for row in rows}


def _stacks(ids: set[int | None]) -> dict[int, dict[str, Any]]:
    wanted = [i for i in ids if i is not None]
    rows = Stack.objects.filter(pk__in=wanted).values(
        "pk", "name", "tenant_id", "tenant__slug", "environment_id", "environment__slug"
    )
    return {row["pk"]: row for row in rows}


def _container_rows(hosts: list[Host]) -> dict[tuple[int, str], int]:
    rows = Container.objects.filter(host__in=hosts).values_list("host_id", "engine_id", "pk")
    return {(host_id, engine_id): pk for host_id, engine_id, pk in rows}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def interval() -> int:
    return max(int(settings.BERTH_METRICS_INTERVAL_SECONDS), 1)
