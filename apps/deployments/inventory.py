"""What a tenant has on its hosts beyond the stack table: volumes (with size, age and
whether their stack is gone), networks, images, and one container's inspect document.

Read-only by design: these are the reconciler's objects, and a change made here behind
its back would be undone or, worse, break a stack. The one change offered is removing an
orphaned volume (its stack was removed without its volumes, nothing mounts it), which no
reconciler will ever look at again.

Tenancy is the engine's labels: every list goes through the driver's label filters, so
only this installation's objects are seen (another Berth on the same engine is never
shown), then narrowed to the tenant's `tenant-id` label. A host that does not answer is
shown as unreachable, never as an error page; the engine's reason (which names its
endpoint, platform infrastructure) is kept apart for platform admins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.catalog.questions import secret_names
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments import containers as naming
from apps.deployments.models import Container, Stack
from apps.deployments.revisions import is_secret_name
from apps.deployments.swarm_tasks import container_problem
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.models import Host

#: How long a host's volume sizes are reused: the engine measures every volume for them.
USAGE_SECONDS = 30
REMEASURE_SECONDS = 5
MASK = "••••••"


@dataclass
class HostResult:
    """One host's answer: its rows, or why it could not be asked."""

    host: Host
    rows: list[Any] = field(default_factory=list)
    error: str = ""  # "unreachable", for everyone
    reason: str = ""  # the engine's words, for platform admins only

    @property
    def unreachable(self) -> bool:
        return bool(self.error)


@dataclass
class VolumeRow:
    host: Host
    name: str
    key: str
    stack_id: int | None
    stack: Stack | None
    environment: str
    created: datetime | None
    size: int | None
    users: int | None

    @property
    def orphaned(self) -> bool:
        """Its stack is gone (removed without its volumes): nothing will use it again."""
        return self.stack is None

    @property
    def in_use(self) -> bool:
        return bool(self.users)


@dataclass
class NetworkRow:
    host: Host
    name: str
    scope: str  # "environment" or "stack"
    stack: Stack | None
    environment: str
    driver: str
    created: datetime | None
    internal: bool


@dataclass
class ImageRow:
    host: Host | None
    id: str
    tags: list[str]
    size: int
    created: datetime | None
    stacks: list[Stack]
    containers: int


# --- which hosts -------------------------------------------------------------------------------


def hosts_to_ask(tenant: Any | None = None) -> list[Host]:
    """Every host that may hold a tenant's objects: registered and checked once (a
    pending host never ran anything); an unreachable one is listed, to say so."""
    return list(Host.objects.exclude(state=Host.State.PENDING).order_by("name"))


def _ask(hosts: Iterable[Host], call) -> list[HostResult]:
    results = []
    for host in hosts:
        try:
            with get_engine(host) as engine:
                results.append(HostResult(host, call(host, engine)))
        except EngineError as exc:
            results.append(HostResult(host, error="unreachable", reason=str(exc)))
    return results


def _tenant_filter(tenant: Any) -> dict[str, str]:
    return {naming.TENANT_ID: str(tenant.pk)}


def _created_label(labels: dict[str, str]) -> float | None:
    """Berth's own creation time label (seconds), when the object carries one."""
    try:
        return float(labels.get(naming.CREATED_AT, ""))
    except ValueError:
        return None


def _when(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC) if value else None
    text = str(value or "")
    if not text:
        return None
    # Go writes nanoseconds and sometimes a zone name suffix; Python takes microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.split(" ")[0])
    try:
        return parse_datetime(text)
    except ValueError:
        return None


# --- volumes -----------------------------------------------------------------------------------


def volume_usage(host: Host, engine) -> dict[str, dict[str, int]]:
    """The host's volume sizes, measured at most once per USAGE_SECONDS (the engine's
    `df` walks every volume); `usage_measured_at` says when, for the page to show."""
    key = f"berth:volume-usage:{host.pk}"
    usage = cache.get(key)
    if usage is None:
        usage = engine.volume_usage()
        cache.set_many({key: usage, f"{key}:at": timezone.now()}, USAGE_SECONDS)
    return usage


def usage_measured_at(hosts: Iterable[Host]) -> datetime | None:
    """When the oldest of these hosts' cached sizes was measured (None: not yet)."""
    times = [cache.get(f"berth:volume-usage:{host.pk}:at") for host in hosts]
    return min((t for t in times if t is not None), default=None)


def measure_again(hosts: Iterable[Host]) -> None:
    """A user's "Measure now": sizes older than REMEASURE_SECONDS are dropped, so one
    impatient page cannot make the engine walk its volumes on every click."""
    for host in hosts:
        at = cache.get(f"berth:volume-usage:{host.pk}:at")
        if at is None or (timezone.now() - at).total_seconds() >= REMEASURE_SECONDS:
            forget_volume_usage(host)


def forget_volume_usage(host: Host) -> None:
    cache.delete_many([f"berth:volume-usage:{host.pk}", f"berth:volume-usage:{host.pk}:at"])


def _stack_id(labels: dict[str, str]) -> int | None:
    try:
        return int(labels.get(naming.STACK, ""))
    except ValueError:
        return None


def _volume_key(name: str, stack_id: int | None) -> str:
    """The compose key of a volume named `berth-<installation>-s<stack>-<key>`."""
    if stack_id is not None:
        marker = f"-s{stack_id}-"
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def _volume_rows(tenant: Any, host: Host, engine, stack_id: int | None = None) -> list[VolumeRow]:
    wanted = _tenant_filter(tenant)
    if stack_id is not None:
        wanted[naming.STACK] = str(stack_id)
    listed = engine.list_volumes(wanted)
    usage = volume_usage(host, engine) if listed else {}
    ids = {_stack_id(v["labels"]) for v in listed} - {None}
    stacks = {s.pk: s for s in Stack.objects.filter(tenant=tenant, pk__in=ids)}
    rows = []
    for volume in listed:
        labels = volume["labels"]
        sid = _stack_id(labels)
        used = usage.get(volume["name"], {})
        size = used.get("size")
        refs = used.get("refcount")
        rows.append(
            VolumeRow(
                host=host,
                name=volume["name"],
                key=_volume_key(volume["name"], sid),
                stack_id=sid,
                stack=stacks.get(sid),
                environment=labels.get(naming.label_key("environment"), ""),
                created=_when(_created_label(labels) or volume.get("created")),
                size=size if size is not None and size >= 0 else None,
                users=refs if refs is not None and refs >= 0 else None,
            )
        )
    return sorted(rows, key=lambda r: (r.stack is not None, r.environment, r.name))


def tenant_volumes(tenant: Any) -> list[HostResult]:
    """The tenant's volumes on every host, orphaned ones first."""
    return _ask(hosts_to_ask(tenant), lambda host, engine: _volume_rows(tenant, host, engine))


def stack_volume_hosts(stack: Stack) -> list[Host]:
    """The hosts its containers run on (or the stack's default host before any exists)."""
    hosts = Host.objects.filter(containers__stack=stack).distinct().order_by("name")
    return list(hosts) or hosts_to_ask(stack.tenant)


def stack_volumes(stack: Stack) -> list[HostResult]:
    """The volumes of one stack, on the hosts its containers run on."""
    hosts = stack_volume_hosts(stack)
    return _ask(
        hosts, lambda host, engine: _volume_rows(stack.tenant, host, engine, stack_id=stack.pk)
    )


def remove_orphaned_volume(user: Any, tenant: Any, host: Host, name: str) -> VolumeRow:
    """Remove one of the tenant's volumes whose stack is gone and which nothing mounts.

    A tenant admin's decision (the data is lost); recorded as an event. A volume of a
    live stack is the reconciler's: refused here, as is one any container mounts.
    """
    require_role(user, tenant, Role.ADMIN)
    try:
        with get_engine(host) as engine:
            rows = {r.name: r for r in _volume_rows(tenant, host, engine)}
            row = rows.get(name)
            if row is None:
                raise ValidationError({"name": f"No volume {name} of {tenant.slug} on {host}."})
            if not row.orphaned:
                raise ValidationError(
                    {
                        "name": f"{name} belongs to stack {row.stack.name}; remove the stack "
                        "with its volumes instead."
                    }
                )
            users = engine.volume_users(name)
            if users:
                raise ValidationError({"name": f"{name} is in use by {', '.join(sorted(users))}."})
            owner = {
                naming.INSTALLATION_LABEL: naming.installation_id(),
                **_tenant_filter(tenant),
            }
            engine.remove_volume(name, owner=owner)
    except EngineError as exc:
        record_event(
            "volume.remove",
            actor=user,
            tenant=tenant,
            outcome=Event.Outcome.FAILURE,
            message=f"Could not remove volume {name} on {host.name}: {exc}",
            data={"host": host.name, "volume": name},
        )
        raise ValidationError({"name": f"The engine refused: {exc}"}) from exc
    forget_volume_usage(host)
    record_event(
        "volume.remove",
        actor=user,
        tenant=tenant,
        message=f"Removed orphaned volume {name} on {host.name} (stack #{row.stack_id} gone)",
        data={"host": host.name, "volume": name, "size": row.size},
    )
    return row


# --- networks ----------------------------------------------------------------------------------


def _network_rows(tenant: Any, host: Host, engine) -> list[NetworkRow]:
    listed = engine.list_networks(_tenant_filter(tenant))
    ids = {_stack_id(n["labels"]) for n in listed} - {None}
    stacks = {s.pk: s for s in Stack.objects.filter(tenant=tenant, pk__in=ids)}
    rows = [
        NetworkRow(
            host=host,
            name=n["name"],
            scope="stack" if _stack_id(n["labels"]) is not None else "environment",
            stack=stacks.get(_stack_id(n["labels"])),
            environment=n["labels"].get(naming.label_key("environment"), ""),
            driver=n.get("driver", ""),
            created=_when(n.get("created")),
            internal=bool(n.get("internal")),
        )
        for n in listed
    ]
    return sorted(rows, key=lambda r: (r.environment, r.scope, r.name))


def tenant_networks(tenant: Any) -> list[HostResult]:
    return _ask(hosts_to_ask(tenant), lambda host, engine: _network_rows(tenant, host, engine))


# --- images ------------------------------------------------------------------------------------


def _image_rows(host: Host, engine, tenant: Any | None) -> list[ImageRow]:
    """The host's images; with `tenant`, only those its containers use."""
    managed = engine.list_managed(_tenant_filter(tenant) if tenant is not None else None)
    by_image: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    refs: dict[str, set[str]] = {}  # the names the containers asked for, per image id
    for container in managed:
        sid = _stack_id(container.labels)
        refs.setdefault(container.image_id, set()).add(container.image)
        by_image.setdefault(container.image_id, set())
        if sid is not None:
            by_image[container.image_id].add(sid)
        counts[container.image_id] = counts.get(container.image_id, 0) + 1
    all_ids = set().union(*by_image.values()) if by_image else set()
    stacks = Stack.objects.filter(pk__in=all_ids).select_related("tenant")
    if tenant is not None:
        stacks = stacks.filter(tenant=tenant)
    found = {s.pk: s for s in stacks}
    rows = []
    for image in engine.list_images():
        if tenant is not None and image["id"] not in by_image:
            continue
        used = sorted(
            (found[i] for i in by_image.get(image["id"], ()) if i in found),
            key=lambda s: (s.tenant.slug, s.name),
        )
        tags = image["tags"] or [d.split("@")[0] + "@…" for d in image["digests"]]
        if tenant is not None:
            # The same content may carry another tenant's private name: a tenant reads
            # only the names its own containers use.
            tags = sorted(refs.get(image["id"], ()))
        rows.append(
            ImageRow(
                host=host,
                id=image["id"],
                tags=tags,
                size=int(image.get("size") or 0),
                created=_when(image.get("created")),
                stacks=used,
                containers=counts.get(image["id"], 0),
            )
        )
    return sorted(rows, key=lambda r: (not r.stacks, r.tags[:1], r.id))


def tenant_images(tenant: Any) -> list[HostResult]:
    """The images the tenant's containers use, host by host."""
    return _ask(hosts_to_ask(tenant), lambda host, engine: _image_rows(host, engine, tenant))


def host_images(host: Host) -> HostResult:
    """Every image on one host with the stacks (of any tenant) that use it: the
    operator's view on the host page."""
    return _ask([host], lambda host, engine: _image_rows(host, engine, None))[0]


# --- one container's inspect -------------------------------------------------------------------


def secret_values_of(stack: Stack, revision: int | None = None) -> list[str]:
    """Values to hide wherever they appear: the answers to secret questions and to
    variables whose names look secret, the stack's current ones and those of the
    container's own revision (it may run older answers); longest first, so a value
    containing another is hidden whole."""
    answers = [(stack.template_version, stack.answers or {})]
    if revision:
        older = stack.revisions.filter(number=revision).select_related("template_version")
        answers += [(r.template_version, r.answers or {}) for r in older]
    values = set()
    for version, given in answers:
        names = secret_names(version, given)
        values |= {
            str(v)
            for k, v in given.items()
            if v not in (None, "") and is_secret_name(str(k), names) and len(str(v)) >= 3
        }
    return sorted(values, key=len, reverse=True)


def _masker(secrets: list[str]):
    def mask(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for value in secrets:
            text = text.replace(value, MASK)
        return text

    return mask


def inspect_container(container: Container) -> dict[str, Any]:
    """What a person reads about one container, secrets masked: image, command,
    entrypoint, environment, mounts, ports, labels, health log, restarts and exits.

    The engine's document is read live; a container gone from the engine is
    `{"error": ...}` with what Berth last knew, never an exception.
    """
    unreachable = container_problem(container, "inspect")
    if unreachable:  # a Swarm task on a node whose engine Berth cannot reach
        return {"error": f"out of reach. {unreachable}", "reason": ""}
    stack = container.stack
    secrets = secret_values_of(stack, container.revision)
    names = secret_names(stack.template_version, stack.answers)
    mask = _masker(secrets)
    try:
        with get_engine(container.host) as engine:
            raw = engine.inspect_container_raw(container.engine_id)
    except EngineError as exc:
        if exc.not_found:
            return {"error": "gone from the engine", "reason": ""}
        if exc.status == 409 and container.host.is_swarm:  # the node's engine was refused
            return {"error": f"out of reach. {exc}", "reason": ""}
        return {
            "error": f"unreachable: its host {container.host.name} does not answer",
            "reason": str(exc),
        }
    config = raw.get("Config") or {}
    state = raw.get("State") or {}
    health = state.get("Health") or {}
    env = []
    for item in config.get("Env") or ():
        key, sep, value = str(item).partition("=")
        secret = bool(sep) and is_secret_name(key, names)
        masked = MASK if secret and value else mask(value)
        env.append({"name": key, "value": masked, "masked": secret or masked != value})
    ports = []
    for key, entries in ((raw.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for entry in entries or [None]:
            ports.append(
                {
                    "container_port": int(port),
                    "protocol": proto or "tcp",
                    "host_ip": (entry or {}).get("HostIp", ""),
                    "host_port": int((entry or {}).get("HostPort") or 0) or None,
                }
            )
    return {
        "id": raw.get("Id", ""),
        "name": str(raw.get("Name", "")).lstrip("/"),
        "image": config.get("Image", ""),
        "image_id": raw.get("Image", ""),
        "created": raw.get("Created", ""),
        "command": [mask(str(a)) for a in config.get("Cmd") or ()],
        "entrypoint": [mask(str(a)) for a in config.get("Entrypoint") or ()],
        "working_dir": config.get("WorkingDir", ""),
        "user": config.get("User", ""),
        "env": env,
        "mounts": [
            {
                "type": m.get("Type", ""),
                "name": m.get("Name", ""),
                # A bind's host path is the host's business; a volume's is shown by name.
                "source": m.get("Source", "") if m.get("Type") == "bind" else "",
                "destination": m.get("Destination", ""),
                "read_only": not m.get("RW", True),
            }
            for m in raw.get("Mounts") or ()
        ],
        "ports": ports,
        "labels": {k: mask(v) for k, v in sorted((config.get("Labels") or {}).items())},
        "state": {
            "status": state.get("Status", ""),
            "running": bool(state.get("Running")),
            "restarting": bool(state.get("Restarting")),
            "oom_killed": bool(state.get("OOMKilled")),
            "exit_code": state.get("ExitCode"),
            "error": mask(state.get("Error", "")),
            "started_at": state.get("StartedAt", ""),
            "finished_at": state.get("FinishedAt", ""),
            "restart_count": int(raw.get("RestartCount") or 0),
        },
        "restart_policy": ((raw.get("HostConfig") or {}).get("RestartPolicy") or {}).get(
            "Name", ""
        ),
        "health": {
            "status": health.get("Status", ""),
            "failing_streak": health.get("FailingStreak", 0),
            "log": [
                {
                    "start": entry.get("Start", ""),
                    "end": entry.get("End", ""),
                    "exit_code": entry.get("ExitCode"),
                    "output": mask(str(entry.get("Output", "")).strip()[-2000:]),
                }
                for entry in reversed(health.get("Log") or [])
            ],
        },
    }


def container_events(user: Any, container: Container, limit: int = 30):
    """Berth's events about this container (its starts, stops, replacements ...)."""
    events = Event.objects.visible_to(user).filter(
        object_type="stack", object_id=str(container.stack_id)
    )
    mentions = events.filter(data__container=container.name) | events.filter(
        message__contains=container.name
    )
    return mentions.order_by("-created_at")[:limit]
