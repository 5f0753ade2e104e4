"""What the Swarm driver sends to create or update a Swarm service (pure: no I/O).

`SwarmServiceRequest` is everything Berth decides about one of a stack's services when
it runs on a swarm, as `ContainerRequest` is for a container on a single engine;
`service_spec` turns it into the Engine API body of `POST /services/create` (and
`/services/{id}/update`), built from docker-py's `docker.types` so the field names and
units (nanoseconds, NanoCPUs) are docker-py's, not ours.

What this machine allows shapes the defaults: no IPVS, so no routing mesh: every
service uses `endpoint_mode: dnsrr` (its name resolves to its tasks' addresses on each
overlay) and published ports are always in host mode (on the node running the task).
The spec hash label is computed over the body itself, so two requests that would make
the same service carry the same hash and a reconciler compares labels, not specs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from docker import types

from apps.hosts.engine.containers import HealthcheckRequest, _healthcheck
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.labels import INSTALLATION_LABEL, MANAGED_LABEL, label_key

SPEC_HASH_LABEL = label_key("spec-hash")
REVISION_LABEL = label_key("revision")
RESTART_CONDITIONS = ("none", "on-failure", "any")
ORDERS = ("stop-first", "start-first")
FAILURE_ACTIONS = ("continue", "pause", "rollback")
PROTOCOLS = ("tcp", "udp", "sctp")
MOUNT_KINDS = ("volume", "tmpfs")
_NS = 1_000_000_000


@dataclass(frozen=True)
class ServiceNetwork:
    """An overlay network the service's tasks join, with their extra DNS names on it."""

    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServicePort:
    """A port published in host mode on the node running the task (no routing mesh
    here); `published` None lets the node's engine pick a free port."""

    target: int
    published: int | None = None
    protocol: str = "tcp"


@dataclass(frozen=True)
class ServiceMount:
    """A mount of a service's tasks: a named local volume (created by the node's engine
    on first use, with `labels`) or a tmpfs (`size` bytes, None: the engine's default)."""

    target: str
    kind: str = "volume"  # volume, tmpfs
    source: str = ""
    read_only: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None


@dataclass(frozen=True)
class ServiceFile:
    """A Swarm secret or config mounted into the service's tasks: the object (id and
    name, made by `SwarmCluster.ensure_file_object`) and the file it becomes. A secret's
    `target` is a file name in /run/secrets; a config's an absolute path."""

    object_id: str
    object_name: str
    target: str
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444


@dataclass(frozen=True)
class RolloutConfig:
    """Swarm's update_config / rollback_config: tasks replaced `parallelism` at a time
    (0: all at once), `delay` seconds between batches, the new task started before the
    old one stops (start-first) or after, what a failed batch does, and how long a new
    task is watched for failure (`monitor`, seconds)."""

    parallelism: int = 1
    delay: float = 0.0
    order: str = "stop-first"
    failure_action: str = "rollback"
    monitor: float | None = None
    max_failure_ratio: float | None = None


@dataclass(frozen=True)
class SwarmServiceRequest:
    """One Berth service as a Swarm service. `labels` are the owner labels (managed,
    installation, tenant, stack, service ...: `managed_labels()`); the spec hash label is
    added by `service_spec`. `registry_auth` (username, password, serveraddress) goes in
    the X-Registry-Auth header only: it is no part of the spec, its hash or its repr."""

    name: str
    image: str
    labels: Mapping[str, str]
    replicas: int = 1
    command: tuple[str, ...] | None = None  # compose `command`: the image's CMD replaced
    entrypoint: tuple[str, ...] | None = None  # compose `entrypoint`
    env: Mapping[str, str | None] = field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    # resources: limits and reservations (compose deploy.resources)
    nano_cpus: int | None = None
    memory: int | None = None
    cpu_reservation: int | None = None  # NanoCPUs
    memory_reservation: int | None = None
    pids_limit: int | None = None
    # restart policy (compose deploy.restart_policy); seconds
    restart_condition: str = "any"
    restart_delay: float | None = None
    restart_max_attempts: int | None = None
    restart_window: float | None = None
    healthcheck: HealthcheckRequest | None = None
    # placement (compose deploy.placement): "node.role==worker", "node.labels.x==y";
    # preferences are spread descriptors ("node.labels.zone")
    constraints: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    max_replicas_per_node: int | None = None
    networks: tuple[ServiceNetwork, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    mounts: tuple[ServiceMount, ...] = ()
    update: RolloutConfig | None = None
    rollback: RolloutConfig | None = None
    stop_grace_period: float | None = None  # seconds; 0 kills at once
    log_max_size: str = "10m"
    log_max_files: int = 3
    # The stack revision this spec was written from: a label outside the spec hash, so a
    # new revision that leaves the service alone does not update (and roll) it.
    revision: int | None = None
    secrets: tuple[ServiceFile, ...] = ()
    configs: tuple[ServiceFile, ...] = ()
    registry_auth: Mapping[str, str] | None = field(default=None, repr=False, compare=False)


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * _NS))


def _choice(value: str, allowed: tuple[str, ...], what: str, name: str) -> str:
    if value not in allowed:
        raise EngineError(
            f"Service {name}: {what} {value!r} is not one of {', '.join(allowed)}.",
            retryable=False,
        )
    return value


def _rollout(config: RolloutConfig | None, kind: type, name: str) -> Any:
    if config is None:
        return None
    return kind(
        parallelism=int(config.parallelism),
        delay=_ns(config.delay),
        failure_action=_choice(config.failure_action, FAILURE_ACTIONS, "failure action", name),
        monitor=_ns(config.monitor),
        max_failure_ratio=config.max_failure_ratio,
        order=_choice(config.order, ORDERS, "update order", name),
    )


def _resources(request: SwarmServiceRequest) -> types.Resources | None:
    values = (request.nano_cpus, request.memory, request.cpu_reservation)
    if all(v is None for v in (*values, request.memory_reservation, request.pids_limit)):
        return None
    resources = types.Resources(
        cpu_limit=request.nano_cpus,
        mem_limit=request.memory,
        cpu_reservation=request.cpu_reservation,
        mem_reservation=request.memory_reservation,
    )
    if request.pids_limit is not None:
        resources.setdefault("Limits", {})["Pids"] = int(request.pids_limit)
    return resources


def _restart_policy(request: SwarmServiceRequest) -> types.RestartPolicy:
    return types.RestartPolicy(
        condition=_choice(request.restart_condition, RESTART_CONDITIONS, "restart", request.name),
        delay=_ns(request.restart_delay) or 0,
        max_attempts=int(request.restart_max_attempts or 0),
        window=_ns(request.restart_window) or 0,
    )


def _endpoint(request: SwarmServiceRequest) -> types.EndpointSpec:
    ports = []
    for port in request.ports:
        spec: dict[str, Any] = {
            "Protocol": _choice(port.protocol, PROTOCOLS, "protocol", request.name),
            "TargetPort": int(port.target),
            "PublishMode": "host",
        }
        if port.published is not None:
            spec["PublishedPort"] = int(port.published)
        ports.append(spec)
    return types.EndpointSpec(mode="dnsrr", ports=ports or None)


def _mount(mount: ServiceMount, name: str) -> types.Mount:
    kind = _choice(mount.kind, MOUNT_KINDS, "mount type", name)
    if kind == "tmpfs":
        return types.Mount(mount.target, None, type="tmpfs", tmpfs_size=mount.size)
    return types.Mount(
        mount.target,
        mount.source,
        type="volume",
        read_only=mount.read_only,
        labels=dict(mount.labels) or None,
    )


def _owner_labels(request: SwarmServiceRequest) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in request.labels.items()}
    if labels.get(MANAGED_LABEL) != "true" or not labels.get(INSTALLATION_LABEL):
        raise EngineError(
            f"Service {request.name} has no owner labels ({MANAGED_LABEL}, "
            f"{INSTALLATION_LABEL}): Berth creates nothing it could not find again.",
            retryable=False,
        )
    labels.pop(SPEC_HASH_LABEL, None)
    labels.pop(REVISION_LABEL, None)
    return labels


def service_spec(request: SwarmServiceRequest) -> dict[str, Any]:
    """The ServiceSpec body (Engine API 1.41) for a request, its spec hash label included.

    The containers carry the owner labels too, so a task's container is recognised as
    Berth's on whichever node's engine it runs.
    """
    if request.replicas < 0:
        raise EngineError(f"Service {request.name}: replicas must be 0 or more.", retryable=False)
    labels = _owner_labels(request)
    healthcheck = _healthcheck(request.healthcheck)
    container = types.ContainerSpec(
        image=request.image,
        command=list(request.entrypoint) if request.entrypoint is not None else None,
        args=list(request.command) if request.command is not None else None,
        env=[k if v is None else f"{k}={v}" for k, v in request.env.items()] or None,
        workdir=request.working_dir,
        user=request.user,
        labels=dict(labels),
        stop_grace_period=_ns(request.stop_grace_period),
        healthcheck=types.Healthcheck(**healthcheck) if healthcheck else None,
        mounts=[_mount(m, request.name) for m in request.mounts] or None,
        secrets=[_file(types.SecretReference, f) for f in request.secrets] or None,
        configs=[_file(types.ConfigReference, f) for f in request.configs] or None,
    )
    placement = None
    if request.constraints or request.preferences or request.max_replicas_per_node:
        placement = types.Placement(
            constraints=list(request.constraints) or None,
            preferences=[types.PlacementPreference("spread", p) for p in request.preferences]
            or None,
            maxreplicas=request.max_replicas_per_node,
        )
    task = types.TaskTemplate(
        container_spec=container,
        resources=_resources(request),
        restart_policy=_restart_policy(request),
        placement=placement,
        log_driver={
            "Name": "json-file",
            "Options": {"max-size": request.log_max_size, "max-file": str(request.log_max_files)},
        },
        networks=[
            types.NetworkAttachmentConfig(n.name, aliases=list(n.aliases) or None)
            for n in request.networks
        ]
        or None,
    )
    body: dict[str, Any] = {
        "Name": request.name,
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": types.ServiceMode("replicated", replicas=int(request.replicas)),
        "EndpointSpec": _endpoint(request),
    }
    update = _rollout(request.update, types.UpdateConfig, request.name)
    rollback = _rollout(request.rollback, types.RollbackConfig, request.name)
    if update is not None:
        body["UpdateConfig"] = update
    if rollback is not None:
        body["RollbackConfig"] = rollback
    _drop_nulls(body)
    body["Labels"] = {**labels, SPEC_HASH_LABEL: spec_hash(body)}
    if request.revision is not None:
        body["Labels"][REVISION_LABEL] = str(request.revision)
    return body


def _file(kind: type, item: ServiceFile) -> Any:
    return kind(
        item.object_id, item.object_name, filename=item.target, uid=item.uid, gid=item.gid,
        mode=item.mode,
    )  # fmt: skip


def _drop_nulls(value: Any) -> None:
    """docker.types write None for every argument not given: left out, the engine's
    defaults apply and the hash does not depend on docker-py's choice of keys."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            _drop_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _drop_nulls(item)


def spec_hash(body: Mapping[str, Any]) -> str:
    """A digest of a service body, its own hash label left out (so it is stable)."""
    labels = {k: v for k, v in (body.get("Labels") or {}).items() if k != SPEC_HASH_LABEL}
    canonical = json.dumps({**body, "Labels": labels}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def registry_auth_header(auth: Mapping[str, str] | None) -> str | None:
    """The X-Registry-Auth header value (URL-safe base64 of the JSON auth config) that
    lets the manager hand the credentials to the nodes pulling the image."""
    if not auth:
        return None
    return base64.urlsafe_b64encode(json.dumps(dict(auth)).encode()).decode()
