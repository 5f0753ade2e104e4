"""Observed state into the database: Container rows, Service health, the stack's state.

Container rows are a mirror of what the engine listed (created, updated, deleted to
match), never a source of truth, so a restored database simply catches up; only
`user_stopped` is the database's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from django.utils import timezone

from apps.compose.spec import ComposeProject
from apps.deployments import containers as naming
from apps.deployments import health as checks
from apps.deployments.models import Container, Service, Stack
from apps.deployments.probes import ProbeStore
from apps.hosts.engine import EngineDriver, EngineError, ManagedContainer

Health = dict[str, tuple[str, str]]  # service -> (health, reason)
_MIRRORED = (
    "service_id",
    "name",
    "replica",
    "revision",
    "image",
    "state",
    "health",
    "health_reason",
    "exit_code",
    "ports",
    "restart_count",
    "address",
)
# The columns the mirror writes (never `user_stopped`, which is the database's own).
_WRITTEN = [name.removesuffix("_id") for name in _MIRRORED] + ["last_seen_at"]


@dataclass
class Observed:
    """One stack's share of a pass, to mirror: the containers listed for it and its
    revision's spec; `routed` names the services the frontier serves."""

    stack: Stack
    listed: list[ManagedContainer]
    spec: dict
    project: ComposeProject | None
    routed: frozenset[str] = frozenset()


@dataclass
class Mirrored:
    """What mirroring one stack found: its services' health, and whether what the
    frontier serves of it (its routed services' rows) changed."""

    health: Health
    membership_changed: bool = False


@dataclass
class _Writes:
    """The rows a mirror of one stack or of many writes, in a fixed number of queries."""

    created: list[Container] = field(default_factory=list)
    changed: list[Container] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)

    def flush(self, host: Any, end_of_pass: bool) -> None:
        if self.created:
            # As update_or_create on (host, engine_id) did: a row written meanwhile is
            # updated.
            Container.objects.bulk_create(
                self.created,
                update_conflicts=True,
                unique_fields=["host", "engine_id"],
                update_fields=[*_WRITTEN, "stack"],
            )
        if self.changed:
            # `draining` only at the end of a pass: mid-pass another thread may set it.
            written = [*_WRITTEN, "draining"] if end_of_pass else _WRITTEN
            Container.objects.bulk_update(self.changed, written)
        if self.gone:
            Container.objects.filter(host=host, pk__in=self.gone).delete()
        if self.services:
            Service.objects.bulk_update(self.services, ["health", "health_reason", "updated_at"])


def mirror(
    stack: Stack,
    host: Any,
    listed: list[ManagedContainer],
    spec: dict,
    project: ComposeProject | None,
    engine: EngineDriver,
    *,
    end_of_pass: bool = False,
) -> Health:
    """Write Service and Container rows from `listed`; return each service's health.

    A few queries whatever the number of containers: one read of the services and one of
    the rows, then at most one insert, one update (of the rows that changed), one delete
    and one update of the services whose health changed. At the end of a pass
    (`end_of_pass`, under the stack's lease, no drain under way) a container still marked
    draining is one whose stop failed or was cut short: it is cleared, so it is not left
    out of the frontier and the health pass for ever.
    """
    observed = Observed(stack, listed, spec, project)
    return mirror_many(host, [observed], engine, end_of_pass=end_of_pass)[stack.pk].health


def mirror_many(
    host: Any, stacks: list[Observed], engine: EngineDriver, *, end_of_pass: bool = False
) -> dict[int, Mirrored]:
    """`mirror` for many stacks of one host at once (the periodic pass), in the same
    number of queries as one: the services and rows of all of them read together, and
    written together."""
    if not stacks:
        return {}
    ids = [item.stack.pk for item in stacks]
    service_rows: dict[int, list[Service]] = {}
    for row in Service.objects.filter(stack_id__in=ids).order_by():
        service_rows.setdefault(row.stack_id, []).append(row)
    container_rows: dict[int, dict[str, Container]] = {}
    # By ids, not instances: Django would set `host` on each of thousands of rows.
    for row in Container.objects.filter(host_id=host.pk, stack_id__in=ids).order_by():
        container_rows.setdefault(row.stack_id, {})[row.engine_id] = row
    probed = _probed(stacks)
    writes = _Writes()
    result = {}
    for item in stacks:
        services = _sync_services(item.stack, item.project, service_rows.get(item.stack.pk, []))
        existing = container_rows.get(item.stack.pk, {})
        result[item.stack.pk] = _mirror_one(
            item, host, engine, services, existing, probed, writes, end_of_pass
        )
    writes.flush(host, end_of_pass)
    return result


def _mirror_one(
    item: Observed,
    host: Any,
    engine: EngineDriver,
    services: dict[str, Service],
    existing: dict[str, Container],
    probed: dict[str, checks.ProbeState],
    writes: _Writes,
    end_of_pass: bool,
) -> Mirrored:
    """One stack's rows into `writes` (nothing written yet); its services' health."""
    stack, spec = item.stack, item.spec
    wanted_hash = {name: naming.service_hash(spec, name) for name in services} if spec else {}
    routed_ids = {services[name].pk for name in item.routed if name in services}
    before = _membership(existing.values(), routed_ids)
    network = naming.network_name(stack)
    now = timezone.now()
    seen: dict[str, Container] = {}
    for listed in item.listed:
        service = services.get(listed.labels.get(naming.SERVICE, ""))
        if service is None:
            continue
        row = existing.get(listed.id)
        values = _values(listed, service, row, engine, network)
        if end_of_pass:
            values["draining"] = False
        if listed.id in probed:
            state = probed[listed.id]
            values.update(health=state.health, health_reason=state.reason)
        if row is None:
            row = Container(host=host, engine_id=listed.id, stack=stack, last_seen_at=now, **values)
            writes.created.append(row)
        elif any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            row.last_seen_at = now
            writes.changed.append(row)
        seen[listed.id] = row
    writes.gone += [row.pk for engine_id, row in existing.items() if engine_id not in seen]
    # The database's own flag, as read with the rows (this host's ids are the listed ones).
    stopped_ids = {engine_id for engine_id, row in existing.items() if row.user_stopped}
    healths = {engine_id: state.health for engine_id, state in probed.items()}
    health = _health(
        stack, services, item.project, item.listed, wanted_hash, stopped_ids, healths, writes
    )
    return Mirrored(health, before != _membership(seen.values(), routed_ids))


def _membership(rows: Any, service_ids: set[int]) -> tuple:
    """What the frontier serves of these rows (as `RolloutSteps.membership` reads it)."""
    if not service_ids:
        return ()
    columns = ("engine_id", "state", "health", "draining", "address")
    chosen = [r for r in rows if r.service_id in service_ids]
    return tuple(sorted(tuple(getattr(r, c) for c in columns) for r in chosen))


def _probed(stacks: list[Observed]) -> dict[str, checks.ProbeState]:
    """Engine id -> what Berth's probe found, for the containers of services it probes
    (Docker runs no check there: its listed health says nothing). Not probed yet:
    starting. One read of the probe store for every stack."""
    ids = []
    for item in stacks:
        names = checks.probed_services(item.spec)
        if names:
            ids += [
                c.id
                for c in item.listed
                if c.labels.get(naming.SERVICE) in names and c.state == "running"
            ]
    if not ids:
        return {}
    found = ProbeStore().get_many(ids)
    return {engine_id: found.get(engine_id) or checks.ProbeState() for engine_id in ids}


def _sync_services(
    stack: Stack, project: ComposeProject | None, found: list[Service]
) -> dict[str, Service]:
    """The stack's Service rows (`found`, read by the caller), made to match the
    project: a new service's row is created, a changed image or scale saved (rare: after
    a new revision, so one query each is fine)."""
    rows = {s.name: s for s in found}
    if project is None:
        return rows
    for name, spec in project.services.items():
        row = rows.get(name)
        if row is None:
            rows[name] = Service.objects.create(
                stack=stack, name=name, image=spec.image, scale=spec.replicas
            )
        elif (row.image, row.scale) != (spec.image, spec.replicas):
            row.image, row.scale = spec.image, spec.replicas
            row.save(update_fields=["image", "scale", "updated_at"])
    return rows


def _values(
    item: ManagedContainer,
    service: Service,
    row: Container | None,
    engine: EngineDriver,
    network: str,
) -> dict[str, Any]:
    try:
        replica = int(item.labels.get(naming.REPLICA, "0"))
        revision = int(item.labels.get(naming.REVISION, "0"))
    except ValueError:
        replica, revision = 0, 0
    values = {
        "service_id": service.pk,
        "name": item.name,
        "replica": replica,
        "revision": revision,
        "image": item.image,
        "state": item.state,
        "health": item.health,
        "health_reason": "",
        "exit_code": item.exit_code,
        "ports": item.ports,
        "restart_count": row.restart_count if row else 0,
        "address": _address(item, network),
    }
    if _settled_exit(item, row):
        # Nothing to learn: a container that stays exited keeps its reason and restart
        # count. Inspecting every one on every pass cost one engine call per stopped
        # container (2,500 calls a pass with 25 stopped stacks of 100).
        values["health_reason"] = row.health_reason
    elif item.health == "unhealthy" or item.state in ("exited", "dead", "restarting"):
        values.update(_inspected(item, engine))
    return values


def _settled_exit(item: ManagedContainer, row: Container | None) -> bool:
    """The row already describes this exited (or dead) container as it is listed."""
    return (
        row is not None
        and item.state in ("exited", "dead")
        and row.state == item.state
        and row.exit_code == item.exit_code
        and row.name == item.name
    )


def _address(item: ManagedContainer, network: str) -> str:
    """Where the frontier reaches the container: its address on the environment network
    (every service container joins it), else on any network it has."""
    return item.addresses.get(network) or next(iter(sorted(item.addresses.values())), "")


def _inspected(item: ManagedContainer, engine: EngineDriver) -> dict[str, Any]:
    """Only for containers in trouble: the health log and restart count need an inspect."""
    try:
        status = engine.inspect_container(item.id)
    except EngineError:
        return {}
    reason = status.health_output or status.error
    if not reason and status.exit_code is not None and status.state == "exited":
        reason = f"exited with code {status.exit_code}"
    return {"health_reason": reason[:1000], "restart_count": status.restart_count}


def _health(
    stack: Stack,
    services: dict[str, Service],
    project: ComposeProject | None,
    listed: list[ManagedContainer],
    wanted_hash: dict[str, str],
    stopped_ids: set[str],
    healths: dict[str, str],
    writes: _Writes,
) -> Health:
    by_service: dict[str, list[ManagedContainer]] = {}
    for c in listed:
        by_service.setdefault(c.labels.get(naming.SERVICE, ""), []).append(c)
    result: Health = {}
    for name, row in services.items():
        if project is None or name not in project.services:
            continue
        mine = by_service.get(name, [])
        health, reason = _service_health(
            stack,
            project.services[name].replicas,
            [_judged(c, healths) for c in mine],
            wanted_hash.get(name),
            stopped_ids,
        )
        if row.flapping:
            health, reason = _flapping(row, health, reason)
        result[name] = (health, reason)
        if (row.health, row.health_reason) != (health, reason):
            # Written by the caller, with the other services whose health changed.
            row.health, row.health_reason = health, reason
            row.updated_at = timezone.now()
            writes.services.append(row)
    return result


def _judged(item: ManagedContainer, healths: dict[str, str]) -> ManagedContainer:
    """The listed container with Berth's probe's verdict as its health, where it has one."""
    if item.id not in healths:
        return item
    return _Probed(**{f.name: getattr(item, f.name) for f in fields(item)}, judged=healths[item.id])


@dataclass(frozen=True)
class _Probed(ManagedContainer):
    judged: str = ""

    @property
    def health(self) -> str:
        return self.judged


def _flapping(row: Service, health: str, reason: str) -> tuple[str, str]:
    """A flapping service is reported as such, even while its newest container is up:
    replaced again and again is not healthy (cleared after a window without one)."""
    count = checks.flapping_count(row.replacements, timezone.now())
    said = checks.flapping_reason(count)
    if health in (Service.Health.HEALTHY, Service.Health.STARTING):
        health = Service.Health.UNHEALTHY
    return health, f"{said}; {reason}" if reason else said


def _service_health(
    stack: Stack,
    replicas: int,
    mine: list[ManagedContainer],
    wanted_hash: str | None,
    stopped_ids: set[str],
) -> tuple[str, str]:
    H = Service.Health  # noqa: N806
    running = [c for c in mine if c.state == "running"]
    if stack.desired_state == Stack.Desired.STOPPED:
        return (H.STOPPED, "") if not running else (H.STARTING, "stopping")
    if replicas == 0:
        return H.HEALTHY, "scaled to 0"
    current = [c for c in running if c.labels.get(naming.SPEC_HASH) == wanted_hash]
    ok = [c for c in current if c.health in ("healthy", "")]
    if len(ok) >= replicas:
        return H.HEALTHY, ""
    stopped = [c for c in mine if c.id in stopped_ids]
    if stopped:
        if not ok:
            return H.STOPPED, "stopped by a user"
        return H.STOPPED, f"{len(stopped)} of {replicas} stopped by a user, {len(ok)} healthy"
    if any(c.health == "starting" for c in current):
        return H.STARTING, f"{len(ok)} of {replicas} healthy, health checks starting"
    if any(c.health == "unhealthy" for c in running):
        return H.UNHEALTHY, f"{len(ok)} of {replicas} healthy"
    if not mine:
        return H.FAILED, "no container"
    exited = [c for c in mine if c.state in ("exited", "dead")]
    if exited and not running:
        code = exited[0].exit_code
        return H.FAILED, f"exited with code {code}" if code is not None else "not running"
    return H.STARTING, f"{len(ok)} of {replicas} running"


def stack_state(stack: Stack, health: Health, failure: str) -> tuple[str, str]:
    """The stack's state and reason from its services' health (and a failed run)."""
    S, H = Stack.State, Service.Health  # noqa: N806
    if stack.desired_state == Stack.Desired.STOPPED:
        if failure:
            return S.FAILED, failure
        if all(h == H.STOPPED for h, _ in health.values()):
            return S.STOPPED, ""
        return S.STOPPING, ""
    if failure:
        return S.FAILED, failure
    bad = {name: (h, r) for name, (h, r) in health.items() if h != H.HEALTHY}
    if not bad:
        return S.HEALTHY, ""
    reason = "; ".join(
        f"{name}: {h}{' (' + r + ')' if r else ''}" for name, (h, r) in sorted(bad.items())
    )
    if all(h == H.STARTING for h, _ in bad.values()):
        return S.DEPLOYING, reason
    # A container a user stopped on purpose degrades the stack; it is not a failure.
    stopped_on_purpose = any(h == H.STOPPED for h, _ in bad.values())
    if len(bad) == len(health) and not stopped_on_purpose:
        return S.FAILED, reason
    return S.DEGRADED, reason
