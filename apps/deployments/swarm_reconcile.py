"""Stacks on a Swarm cluster (issue 14, slice 3): what a stack may use there, its
services as Swarm services, and the pass that converges and mirrors them.

A stack on a swarm is a set of Swarm services, one per Compose service, on one overlay
network of the stack's own (Berth creates it; a compose file cannot name a network),
where a bare service name means this stack's, and on its environment's overlay, where
the environment's stacks reach each other as `<service>.<stack>` (as on an engine).
Swarm does the rolling, restarting and placing; Berth's pass only writes the specs it
wants (create, update when the spec hash label differs, remove what is no longer
wanted) and mirrors the tasks into Container rows, so the stack page, the API and
scaling work as for a stack on an engine.

The subset is deliberately small, and everything outside it is refused when the stack
is created or edited (`swarm_problems`), never deployed half-working:

- runs: image (Berth's registry only, the tenant's pull right checked as on an engine;
  the nodes pull with the tenant's credential), command, entrypoint, environment, user,
  working_dir, replicas, cpu/memory/pids limits and memory reservations, restart (left
  out: Swarm's `any`, so tasks are replaced after a drain or a node loss),
  healthcheck, stop_grace_period, placement constraints, spread preferences and
  max_replicas_per_node, Berth's rolling settings (or
  deploy.update_config) as Swarm's update_config, depends_on (`service_started` orders
  nothing: Swarm starts every service at once; `service_healthy` is honoured when a
  service is first created: the pass creates it only once each such dependency has a
  running task, which on Swarm means a healthy one, and tells why it waits), `ports`
  with no host port (published in host mode on the task's node at a port the node
  picks, as a route's port is), discovery by service name on the stack's overlay
  (endpoint_mode dnsrr: no routing mesh here), secrets and configs from the
  environment's store (below).
- traffic: a route to a service publishes the route's container port in host mode on
  each task's node, at a port the node picks; the mirrored task carries its node's
  address and that port, and the frontier (HAProxy on Berth's host) sends the route
  there. Swarm replaces tasks during an update; the pass waiting for it mirrors every
  half second, so a new task joins the frontier before the next batch (`delay`).
  That port answers whoever reaches the node: firewall the nodes so that only Berth's
  host reaches their ephemeral ports.
- canaries: a new revision of a routed service whose upgrade strategy is canary does not
  update its Swarm service. A second Swarm service (`canary_service_name`, labelled
  with the revision it runs) starts the new revision with the first batch's replicas
  beside the old ones; the frontier gives its tasks the rollout's weight, as on an
  engine (their rows carry the new revision, the old service's the old one). Promote
  updates the service itself (Swarm's rolling update) and, once it is settled, drains
  and removes the canary; abort puts the stack back on the old revision (the service
  is unchanged) and drains and removes the canary. The service's spec carries the
  revision it was written from outside its hash, so a revision that leaves a service
  alone neither rolls it nor starts a canary.
- refused: ports with a host port (`"80:8080"`: the same port on every node, outside
  the frontier; a route publishes what the frontier needs), bind mounts and anonymous
  volumes,
  networks other than the default one, network_mode/pid/ipc/uts/userns, privileged,
  capabilities, devices, security_opt, sysctls, cgroup_parent, volumes_from, the
  depends_on condition service_completed_successfully, and constraints on `io.berth.` node
  labels (reserved for Berth).

Secrets and configs: each version of a store entry a stack uses becomes a Swarm secret
(or config) of that stack, named from ids (`file_object_name`) and labelled like its
services; a service mounts it at /run/secrets/<target> (a config at its target path).
Swarm's objects are immutable, so a rotation makes a new one: the service spec names it,
its hash changes and Swarm rolls the tasks; versions no service uses any more are
removed after the pass, and all of them with the stack.

Housekeeping in the periodic pass (`reconcile_cluster`): what a stack no longer in the
database left on the swarm (services, its overlay, secrets, configs; never volumes) is
removed past the orphan grace period (`remove_orphans`), and a service whose task could
not pull its image gets a fresh pull credential (`refresh_pull_credentials`: Swarm keeps
the one handed over at the last create or update, and Berth's expires in minutes).

Tenant isolation on the swarm: a node labelled `io.berth.tenant=<slug>` is reserved for
that tenant; every service gets a `node.labels.io.berth.tenant!=<other>` constraint for
each other tenant holding a reserved node (unlabelled nodes are shared), read from the
node list on each pass, so reserving a node moves other tenants' tasks off it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.compose.files import DEFAULT_MODES, SECRETS_DIR
from apps.compose.spec import ComposeProject, ServiceSpec, VolumeSpec
from apps.deployments import containers as naming
from apps.deployments import secret_store
from apps.deployments.models import Container, Revision, Rollout, Route, Secret, Service, Stack
from apps.deployments.resources import service_resources
from apps.deployments.signals import frontier_changed
from apps.deployments.spec import project_from_spec, upgrade_of
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.engine.containers import HealthcheckRequest
from apps.hosts.engine.labels import INSTALLATION_LABEL, installation_id, label_key
from apps.hosts.engine.swarm import (
    FileObjectInfo,
    OverlayNetworkInfo,
    SwarmCluster,
    SwarmNodeInfo,
    SwarmServiceInfo,
    SwarmTaskInfo,
)
from apps.hosts.engine.swarm_services import (
    FAILURE_ACTIONS,
    REVISION_LABEL,
    RolloutConfig,
    ServiceFile,
    ServiceMount,
    ServiceNetwork,
    ServicePort,
    SwarmServiceRequest,
    service_spec,
)
from apps.hosts.models import Host, SwarmNode
from apps.registry.deploy import (
    _check_berth_image,
    checked_reference,
    is_berth_registry,
    registry_pull_auth,
)

log = logging.getLogger(__name__)

#: On a canary's Swarm service: the revision it runs (the service's own runs the old one).
CANARY_LABEL = label_key("canary")
#: The node label that reserves a node for one tenant (its slug).
TENANT_NODE_LABEL = "io.berth.tenant"
RESERVED_CONSTRAINT = "node.labels.io.berth."
#: How long one pass waits for the services it changed to converge before mirroring.
SETTLE_SECONDS = 90.0
#: How often a pass waiting for its services looks at their tasks again (and mirrors them).
SETTLE_POLL_SECONDS = 0.5
PORTS_REFUSED = (
    "a host port is not available on a Swarm cluster (the same port on every node, "
    'outside the frontier): give the container port only (`- "8080"`: published on a '
    "port the task's node picks), or add a route to reach it through the frontier."
)
#: depends_on conditions a swarm honours (service_healthy: at first creation).
SWARM_CONDITIONS = ("service_started", "service_healthy")
_REFUSED_FIELDS = (
    ("volumes_from", "volumes_from"),
    ("network_mode", "network_mode"),
    ("pid", "pid"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("userns_mode", "userns_mode"),
    ("privileged", "privileged"),
    ("cap_add", "cap_add"),
    ("cap_drop", "cap_drop"),
    ("devices", "devices"),
    ("device_cgroup_rules", "device_cgroup_rules"),
    ("security_opt", "security_opt"),
    ("sysctls", "sysctls"),
    ("cgroup_parent", "cgroup_parent"),
)
STORE_KIND = label_key("store-kind")
STORE_ENTRY = label_key("store-entry")
STORE_VERSION = label_key("store-version")
STORE_NAME = label_key("store-name")
_RUNNING_STATES = {"running"}
_STARTING_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
_UPDATING = {"updating", "rollback_started", "paused", "rollback_paused"}


def targets_swarm(environment: Any) -> Host | None:
    """The environment's Swarm cluster host, if it targets one."""
    return environment.hosts.filter(kind=Host.Kind.SWARM).order_by("pk").first()


# --- what a stack may use on a swarm ---------------------------------------------------------


def swarm_problems(project: ComposeProject) -> list[str]:
    """Why this project cannot run on a swarm, one message per field (`services.<name>.
    <field>: why`); empty when it can."""
    problems: list[str] = []
    for key, volume in project.volumes.items():
        problems.extend(f"volumes.{key}: {msg}" for msg in _volume_problems(volume))
    for key in project.networks:
        if key != "default":
            problems.append(
                f"networks.{key}: a stack on a Swarm cluster has one overlay network, made "
                "by Berth; it cannot declare or join other networks."
            )
    for name, service in project.services.items():
        problems.extend(f"services.{name}.{msg}" for msg in service_problems(service))
    return problems


def service_problems(service: ServiceSpec) -> list[str]:
    found: list[str] = []
    for port in service.ports:
        if port.published is not None:
            found.append(f"ports: {port.published}:{port.target}: {PORTS_REFUSED}")
    found.extend(_mount_problems(service))
    for attr, key in _REFUSED_FIELDS:
        if getattr(service, attr):
            found.append(f"{key}: not available on a Swarm cluster.")
    for net in service.networks:
        if net != "default":
            found.append(
                f"networks: {net}: a service on a Swarm cluster joins its stack's overlay "
                "network only."
            )
    for dep, condition in service.depends_on.items():
        if condition.condition not in SWARM_CONDITIONS:
            found.append(
                f"depends_on.{dep}: condition {condition.condition} cannot be honoured on a "
                "Swarm cluster (a service's tasks are restarted, never run once): "
                "service_started or service_healthy only."
            )
    found.extend(_placement_problems(service))
    found.extend(_image_problems(service))
    return found


def _mount_problems(service: ServiceSpec) -> list[str]:
    found: list[str] = []
    for mount in service.volumes:
        if mount.type == "bind":
            found.append(
                f"volumes: {mount.source}:{mount.target}: bind mounts are not available on "
                "a Swarm cluster (a host path of whichever node runs the task)."
            )
        elif mount.type == "volume" and not mount.source:
            found.append(
                f"volumes: {mount.target}: anonymous volumes are not available on a Swarm "
                "cluster (lost whenever Swarm moves the task): name the volume."
            )
        elif mount.type not in ("volume", "tmpfs"):
            found.append(f"volumes: {mount.target}: {mount.type} mounts are not available.")
    return found


def _volume_problems(volume: VolumeSpec) -> list[str]:
    if volume.external or volume.name:
        return [
            "external or explicitly named volumes are not available on a Swarm cluster: a "
            "stack's volumes are made by Berth, on the node it pins them to."
        ]
    found = []
    if volume.driver not in (None, "local"):
        found.append(f"driver {volume.driver!r}: only local volumes on a Swarm cluster.")
    if volume.driver_opts:
        found.append("driver_opts: not available on a Swarm cluster.")
    return found


def _placement_problems(service: ServiceSpec) -> list[str]:
    found: list[str] = []
    for constraint in service.deploy.placement_constraints:
        text = constraint.replace(" ", "")
        if text.startswith(RESERVED_CONSTRAINT):
            found.append(
                f"deploy.placement.constraints: {constraint!r}: node labels under io.berth. "
                "are reserved for Berth."
            )
        elif "==" not in text and "!=" not in text:
            found.append(
                f"deploy.placement.constraints: {constraint!r} is not `attribute==value` or "
                "`attribute!=value`."
            )
    return found


def _image_problems(service: ServiceSpec) -> list[str]:
    found: list[str] = []
    try:
        ref = checked_reference(service.image)
        berth = is_berth_registry(ref.domain)
    except EngineError:
        berth = True  # the compose reader already said what is wrong with it
    if not berth:
        found.append(
            f"image: {service.image} is not in Berth's registry: on a Swarm cluster every "
            "node pulls the image, and only Berth's registry is reachable from them."
        )
    return found


def check_swarm_spec(environment: Any, spec: Mapping[str, Any]) -> None:
    """A ValidationError on `compose` naming each field a swarm cannot run, when the
    environment targets a swarm; nothing otherwise."""
    if targets_swarm(environment) is None:
        return
    problems = swarm_problems(project_from_spec(spec))
    if problems:
        raise ValidationError({"compose": problems})


# --- the mapping -------------------------------------------------------------------------------


def service_name(stack: Any, service: str) -> str:
    """The Swarm service name: built from ids like a container's, so no other stack,
    tenant or installation can produce it."""
    return f"{naming._prefix()}-s{stack.pk}-{service}"


def canary_service_name(stack: Any, service: str) -> str:
    """A canary's Swarm service: `-c<stack id>-` where the service's own has
    `-s<stack id>-`, so no Compose service name can produce it."""
    return f"{naming._prefix()}-c{stack.pk}-{service}"


def is_canary(service: SwarmServiceInfo) -> bool:
    return bool(service.labels.get(CANARY_LABEL))


def service_labels(stack: Any, service: str) -> dict[str, str]:
    return {**naming.stack_labels(stack), naming.SERVICE: service}


def tenant_constraints(stack: Any, nodes: list[SwarmNodeInfo]) -> tuple[str, ...]:
    """Keep the stack's tasks off nodes reserved for other tenants."""
    others = {n.labels.get(TENANT_NODE_LABEL, "") for n in nodes} - {"", stack.tenant.slug}
    return tuple(f"node.labels.{TENANT_NODE_LABEL}!={slug}" for slug in sorted(others))


def file_object_name(stack: Any, entry: Secret) -> str:
    """The Swarm secret's (or config's) name for one version of a store entry used by
    one stack: built from ids, a new name for each version (Swarm's are immutable)."""
    return f"{naming._prefix()}-s{stack.pk}-{entry.kind[0]}{entry.pk}v{entry.version}"


def file_object_labels(stack: Any, entry: Secret) -> dict[str, str]:
    return {
        **naming.stack_labels(stack),
        STORE_KIND: entry.kind,
        STORE_ENTRY: str(entry.pk),
        STORE_VERSION: str(entry.version),
        STORE_NAME: entry.name,
    }


#: (kind, compose key) -> (Swarm object id, name): the objects a pass made sure exist.
FileObjects = Mapping[tuple[str, str], tuple[str, str]]


def service_files(service: ServiceSpec, kind: str, objects: FileObjects) -> tuple[ServiceFile, ...]:
    """A service's secrets or configs as Swarm file references (a secret's target is its
    file name in /run/secrets, which is where Swarm puts a relative one)."""
    refs = service.secrets if kind == "secret" else service.configs
    found = []
    for ref in refs:
        object_id, object_name = objects[kind, ref.source]
        target = ref.target.removeprefix(f"{SECRETS_DIR}/") if kind == "secret" else ref.target
        found.append(
            ServiceFile(
                object_id=object_id,
                object_name=object_name,
                target=target,
                uid=ref.uid or "0",
                gid=ref.gid or "0",
                mode=DEFAULT_MODES[kind] if ref.mode is None else ref.mode,
            )
        )
    return tuple(found)


def _restart(service: ServiceSpec) -> tuple[str, int | None]:
    """Compose's `restart` as Swarm's restart condition. Left out, Swarm's own default
    (any), as `docker stack deploy` does: with `none`, a task shut down by a drain or a
    node loss is never replaced, and the service stays at 0 when the node comes back."""
    policy = service.restart
    if policy is None:
        return "any", None
    if policy.name == "no":
        return "none", None
    if policy.name == "on-failure":
        return "on-failure", policy.max_retries
    return "any", None


def _rollout(spec: Mapping[str, Any], project: ComposeProject, name: str) -> RolloutConfig:
    upgrade = upgrade_of(spec, project, name)
    action = str(upgrade.get("failure_action") or "rollback")
    return RolloutConfig(
        parallelism=int(upgrade.get("batch_size") or 0),
        delay=float(upgrade.get("interval") or 0.0),
        order=str(upgrade.get("order") or "stop-first"),
        failure_action=action if action in FAILURE_ACTIONS else "rollback",
        monitor=float(upgrade.get("monitor") or 0.0) or None,
    )


def swarm_request(
    stack: Any,
    spec: Mapping[str, Any],
    project: ComposeProject,
    name: str,
    *,
    nodes: list[SwarmNodeInfo] = (),  # type: ignore[assignment]
    registry_auth: Mapping[str, str] | None = None,
    routed_ports: Collection[int] = (),
    volume_node: str = "",
    files: FileObjects | None = None,
    revision: int | None = None,
) -> SwarmServiceRequest:
    """One Compose service of the stack's spec as a Swarm service (pure: no I/O).

    `routed_ports` are the container ports the frontier's routes send to: each is
    published in host mode on a port the task's node picks (no routing mesh here), which
    the frontier reads back from the task (`SwarmTaskInfo.ports`). A service mounting a
    named volume is pinned to `volume_node` (the stack's volumes live there)."""
    service = project.services[name]
    problems = service_problems(service)
    if problems:
        raise EngineError(f"Service {name}: {problems[0]}", retryable=False)
    resources = service_resources(spec, project, name)
    condition, attempts = _restart(service)
    check = service.healthcheck
    hardening = spec.get("hardening") or {}
    replicas = service.replicas if stack.desired_state == Stack.Desired.RUNNING else 0
    rollout = _rollout(spec, project, name)
    return SwarmServiceRequest(
        name=service_name(stack, name),
        image=service.image,
        labels={**service.labels, **service.deploy.labels, **service_labels(stack, name)},
        replicas=replicas,
        command=service.command,
        entrypoint=service.entrypoint,
        env=dict(service.environment),
        user=service.user,
        working_dir=service.working_dir,
        nano_cpus=int(resources.cpus * 1_000_000_000) if resources.cpus else None,
        memory=resources.memory,
        memory_reservation=service.mem_reservation or naming.limits_reservation(service),
        pids_limit=resources.pids,
        restart_condition=condition,
        restart_max_attempts=attempts,
        healthcheck=HealthcheckRequest(
            test=check.test,
            interval=check.interval,
            timeout=check.timeout,
            start_period=check.start_period,
            retries=check.retries,
        )
        if check is not None
        else None,
        constraints=(
            *service.deploy.placement_constraints,
            *tenant_constraints(stack, list(nodes)),
            *((f"node.id=={volume_node}",) if volume_node and uses_volumes(service) else ()),
        ),
        preferences=service.deploy.placement_preferences,
        max_replicas_per_node=service.deploy.max_replicas_per_node,
        mounts=_mounts(stack, service),
        networks=(
            ServiceNetwork(naming.stack_network_name(stack), (name, *naming._aliases(service))),
            # The environment's overlay, where its stacks reach each other as
            # `<service>.<stack>`, as on an engine's environment network.
            ServiceNetwork(naming.network_name(stack), (naming.environment_alias(stack, name),)),
        ),
        update=rollout,
        rollback=RolloutConfig(parallelism=0, order=rollout.order, failure_action="pause"),
        stop_grace_period=naming._capped_grace(service.stop_grace_period),
        log_max_size=str(hardening.get("log_max_size") or "10m"),
        log_max_files=int(hardening.get("log_max_files") or 3),
        secrets=service_files(service, "secret", files or {}),
        configs=service_files(service, "config", files or {}),
        registry_auth=registry_auth,
        ports=_ports(service, routed_ports),
        revision=revision,
    )


def _ports(service: ServiceSpec, routed_ports: Collection[int]) -> tuple[ServicePort, ...]:
    """The routes' container ports and the Compose `ports` without a host port, each
    published once in host mode at a port the node picks."""
    wanted = {(port, "tcp") for port in routed_ports}
    wanted |= {(p.target, p.protocol) for p in service.ports if p.published is None}
    return tuple(ServicePort(target=t, protocol=proto) for t, proto in sorted(wanted))


def uses_volumes(service: ServiceSpec) -> bool:
    return any(m.type == "volume" and m.source for m in service.volumes)


def _mounts(stack: Any, service: ServiceSpec) -> tuple[ServiceMount, ...]:
    mounts = []
    for mount in service.volumes:
        if mount.type == "tmpfs":
            mounts.append(ServiceMount(mount.target, kind="tmpfs", size=mount.tmpfs_size))
        elif mount.type == "volume" and mount.source:
            mounts.append(
                ServiceMount(
                    mount.target,
                    source=naming.volume_name(stack, mount.source),
                    read_only=mount.read_only,
                    labels=naming.stack_labels(stack),
                )
            )
    return tuple(mounts)


def choose_volume_node(
    stack: Any,
    project: ComposeProject,
    nodes: list[SwarmNodeInfo],
    tasks: list[SwarmTaskInfo] = (),  # type: ignore[assignment]
) -> SwarmNodeInfo | None:
    """The node to hold a stack's volumes: ready and active, not reserved for another
    tenant, meeting the simple constraints (`node.id`, `node.hostname`, `node.role`,
    `node.labels.*`) of every service mounting one; the least busy (tasks), then by name."""
    constraints = [
        c
        for service in project.services.values()
        if uses_volumes(service)
        for c in service.deploy.placement_constraints
    ]
    busy: dict[str, int] = {}
    for task in tasks:
        if task.desired_state == "running":
            busy[task.node_id] = busy.get(task.node_id, 0) + 1
    fit = [
        n
        for n in nodes
        if n.state == "ready"
        and n.availability == "active"
        and n.labels.get(TENANT_NODE_LABEL, stack.tenant.slug) == stack.tenant.slug
        and all(_meets(n, c) for c in constraints)
    ]
    return min(fit, key=lambda n: (busy.get(n.node_id, 0), n.hostname), default=None)


def _meets(node: SwarmNodeInfo, constraint: str) -> bool:
    """Whether `node` meets `attribute==value` / `attribute!=value`; an attribute this
    does not know (engine labels, platform) is left to Swarm (True)."""
    text = constraint.replace(" ", "")
    negate = "!=" in text
    attribute, _, value = text.partition("!=" if negate else "==")
    known = {"node.id": node.node_id, "node.hostname": node.hostname, "node.role": node.role}
    if attribute.startswith("node.labels."):
        actual = node.labels.get(attribute.removeprefix("node.labels."))
    elif attribute in known:
        actual = known[attribute]
    else:
        return True
    return (actual != value) if negate else (actual == value)


def _authorised(image: str, tenant_slug: str) -> Mapping[str, str] | None:
    """The tenant's right to the image checked as on an engine; the nodes' pull credential."""
    ref = checked_reference(image)
    if not is_berth_registry(ref.domain):
        raise EngineError(
            f"Refused image {image!r}: only Berth's registry is reachable from a swarm's nodes.",
            retryable=False,
        )
    _check_berth_image(image, ref.path, ref.digest, tenant_slug)
    return registry_pull_auth(image, tenant_slug)


# --- the pass ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterListing:
    """Everything of this installation on a swarm, listed once for the periodic pass
    (four calls, whatever the number of stacks, services and tasks)."""

    services: list[SwarmServiceInfo]
    tasks: list[SwarmTaskInfo]
    nodes: list[SwarmNodeInfo]
    networks: frozenset[str]  # this installation's overlay networks (made by Berth)
    network_objects: tuple[OverlayNetworkInfo, ...] = ()  # the same, with their labels

    @classmethod
    def of_cluster(cls, engine: SwarmCluster) -> ClusterListing:
        networks = engine.list_overlay_network_infos()
        return cls(
            engine.list_services(),
            engine.list_service_tasks(),
            engine.list_nodes(),
            frozenset(n.name for n in networks),
            tuple(networks),
        )

    def of(self, stack: Stack) -> tuple[list[SwarmServiceInfo], list[SwarmTaskInfo]]:
        """The stack's services (its id and its tenant's on their labels) and their tasks."""
        owner = {naming.STACK: str(stack.pk), naming.TENANT_ID: str(stack.tenant_id)}
        services = [s for s in self.services if all(s.labels.get(k) == v for k, v in owner.items())]
        ids = {s.service_id for s in services}
        return services, [t for t in self.tasks if t.service_id in ids]


class SwarmRun:
    """One stack's pass on a swarm: converge its services, then mirror their tasks.

    Fed the cluster's listing (the periodic pass), a stack whose services need no change
    asks the swarm nothing more; on its own (a stack's task) it lists its services."""

    def __init__(
        self, stack: Stack, host: Host, engine: SwarmCluster, listed: ClusterListing | None = None
    ) -> None:
        self.stack, self.host, self.engine, self.listed = stack, host, engine, listed
        revision = stack.current_revision
        self.spec: dict | None = revision.spec if revision is not None else None
        self.project = project_from_spec(self.spec) if self.spec else None
        self.owner = {naming.STACK: str(stack.pk), naming.TENANT_ID: str(stack.tenant_id)}
        self.failure = ""
        self.files: dict[tuple[str, str], tuple[str, str]] = {}
        self.listed_files: dict[str, list[FileObjectInfo]] = {}
        self.revision = revision.number if revision is not None else 0
        #: Service name -> the spec hash this pass wants for its own Swarm service.
        self.wanted: dict[str, str] = {}
        #: Service name -> its active canary rollout (read by `converge`).
        self.rollouts: dict[str, Rollout] = {}
        #: Service name -> the service_healthy dependencies it waits for before creation.
        self.deferred: dict[str, list[str]] = {}

    def execute(self) -> None:
        stack = self.stack
        try:
            services = (
                self.listed.of(stack)[0] if self.listed else self.engine.list_services(self.owner)
            )
        except EngineError as exc:
            _state(stack, Stack.State.UNKNOWN, f"The swarm is unreachable: {exc}")
            return
        if stack.desired_state == Stack.Desired.REMOVED or self.project is None:
            if stack.desired_state == Stack.Desired.REMOVED:
                self.remove(services)
            return
        try:
            changed = self.converge(services)
            if changed:
                self.event("stack.reconcile", f"Swarm services changed: {', '.join(changed)}")
                self.wait_until_settled()
            rounds = len(self.project.services)
            while self.deferred and changed and rounds:  # their dependencies have settled
                rounds -= 1
                more = self.converge(self.engine.list_services(self.owner))
                if more:
                    self.event("stack.reconcile", f"Swarm services changed: {', '.join(more)}")
                    self.wait_until_settled()
                changed = changed + more if more else []
            if changed or self.stale_files():  # after a change the objects are listed again
                keep = {object_id for object_id, _ in self.files.values()}
                self.prune_files(keep, listed=None if changed else self.listed_files)
            if self.listed and not changed:
                observed = (*self.listed.of(stack), self.listed.nodes)
            else:
                observed = self.observe()
            if self.end_rollouts(*observed):
                observed = self.observe()
        except (EngineError, secret_store.StoreError) as exc:
            self.failure = str(exc)
            self.event("stack.reconcile", self.failure, outcome=Event.Outcome.FAILURE)
            try:
                observed = self.observe()
            except EngineError:
                _state(stack, Stack.State.FAILED, self.failure)
                return
        self.mirror(*observed)

    def observe(self) -> tuple[list[SwarmServiceInfo], list[SwarmTaskInfo], list[SwarmNodeInfo]]:
        """The stack's services and their tasks, and the nodes (their addresses): three
        calls, whatever the number of tasks."""
        services = self.engine.list_services(self.owner)
        tasks = self.engine.list_service_tasks(self.owner)
        return services, tasks, self.engine.list_nodes()

    # converge -------------------------------------------------------------------------------

    def converge(self, services: list[SwarmServiceInfo]) -> list[str]:
        """Create, update (spec hash differs) and remove services; the names changed."""
        assert self.project is not None and self.spec is not None
        stack = self.stack
        nodes = self.listed.nodes if self.listed else self.engine.list_nodes()
        network = naming.stack_network_name(stack)
        if not self.listed or network not in self.listed.networks:
            self.engine.ensure_overlay_network(
                network, naming.stack_labels(stack), owner=naming.stack_owner(stack)
            )
        shared = naming.network_name(stack)
        if not self.listed or shared not in self.listed.networks:
            self.engine.ensure_overlay_network(
                shared, naming.environment_labels(stack), owner=naming.environment_owner(stack)
            )
        existing = {s.labels.get(naming.SERVICE, ""): s for s in services if not is_canary(s)}
        canaries = {s.labels.get(naming.SERVICE, ""): s for s in services if is_canary(s)}
        routed = _routed_ports(stack)
        self.deferred = {}
        volume_node = self.volume_node(nodes)
        self.rollouts = _active_canaries(stack)
        changed = []
        auths: dict[str, Mapping[str, str] | None] = {}
        self.files = self.ensure_files()
        for name, service in self.project.services.items():
            if service.image not in auths:
                auths[service.image] = _authorised(service.image, stack.tenant.slug)
            request = swarm_request(
                stack, self.spec, self.project, name, nodes=nodes,
                registry_auth=auths[service.image], routed_ports=routed.get(name, ()),
                volume_node=volume_node, files=self.files, revision=self.revision,
            )  # fmt: skip
            wanted = service_spec(request)["Labels"][naming.SPEC_HASH]
            self.wanted[name] = wanted
            found = existing.pop(name, None)
            rollout = self.canary_rollout(name, found, wanted, name in routed)
            if rollout is not None and rollout.state == Rollout.State.CANARY:
                # The service's own keeps the old revision; the canary runs the new one.
                if self.ensure_canary(name, request, canaries.pop(name, None)):
                    changed.append(f"{name} (canary)")
                continue
            if rollout is not None:  # promoting or aborting: the canary goes once settled
                canaries.pop(name, None)
            if self.write_service(name, request, found, wanted, services):
                changed.append(name)
        for name, found in existing.items():
            self.engine.remove_service(found.service_id)
            changed.append(name)
        for name, found in canaries.items():  # superseded, or its service is gone
            self.remove_canary(found)
            changed.append(f"{name} (canary)")
        return changed

    # canaries -------------------------------------------------------------------------------

    def canary_rollout(
        self, name: str, found: SwarmServiceInfo | None, wanted: str, routed: bool
    ) -> Rollout | None:
        """The service's active canary rollout: the one in progress (one a newer revision
        superseded is ended), or a new one when this revision changes a running, routed
        service whose upgrade strategy is canary."""
        rollout = self.rollouts.get(name)
        if rollout is not None:
            expected = (
                rollout.from_revision
                if rollout.state == Rollout.State.ABORTING
                else rollout.to_revision
            )
            if expected == self.revision:
                return rollout
            _end_rollout(rollout, Rollout.State.FAILED, f"superseded by r{self.revision}")
            self.event(
                "rollout.superseded",
                f"{name}: the canary of r{rollout.to_revision} ends, r{self.revision} replaces it",
            )
            del self.rollouts[name]
        assert self.spec is not None and self.project is not None
        if (
            found is None
            or found.spec_hash == wanted
            or not routed
            or found.replicas_desired == 0
            or self.stack.desired_state != Stack.Desired.RUNNING
            or found.labels.get(REVISION_LABEL) == str(self.revision)
            or upgrade_of(self.spec, self.project, name)["strategy"] != "canary"
        ):
            return None
        return self.start_canary(name, found)

    def start_canary(self, name: str, found: SwarmServiceInfo) -> Rollout:
        assert self.spec is not None and self.project is not None
        written = found.labels.get(REVISION_LABEL, "")
        rollout = Rollout.objects.create(
            stack=self.stack,
            service=name,
            strategy=Rollout.Strategy.CANARY,
            state=Rollout.State.CANARY,
            from_revision=int(written) if written.isdecimal() else self.previous_revision(),
            to_revision=self.revision,
            canary_weight=int(upgrade_of(self.spec, self.project, name)["canary_weight"]),
        )
        self.rollouts[name] = rollout
        self.event(
            "rollout.canary",
            f"{name}: canary r{rollout.to_revision} beside r{rollout.from_revision} takes "
            f"{rollout.canary_weight}% of the traffic",
        )
        return rollout

    def previous_revision(self) -> int:
        """The stack's revision before this one (a service written before revisions were
        labelled on the swarm)."""
        older = Revision.objects.filter(stack=self.stack, number__lt=self.revision)
        return older.order_by("-number").values_list("number", flat=True).first() or 0

    def ensure_canary(
        self, name: str, request: SwarmServiceRequest, found: SwarmServiceInfo | None
    ) -> bool:
        """The canary's Swarm service at the new revision with the first batch's replicas
        (batch_size, at least 1; none while the stack is stopped); True if written."""
        assert self.spec is not None and self.project is not None
        batch = int(upgrade_of(self.spec, self.project, name)["batch_size"]) or 1
        canary = dataclasses.replace(
            request,
            name=canary_service_name(self.stack, name),
            replicas=min(batch, request.replicas),
            labels={**request.labels, CANARY_LABEL: str(self.revision)},
        )
        wanted = service_spec(canary)["Labels"][naming.SPEC_HASH]
        if found is None:
            self.engine.create_service(canary)
            return True
        if found.spec_hash != wanted:
            self.engine.update_service(found.service_id, canary)
            return True
        return False

    def remove_canary(self, found: SwarmServiceInfo) -> None:
        """Drain its tasks in the frontier first (it stops sending them new requests and
        lets those in flight finish: BERTH_FRONTIER_DRAIN_SECONDS), then remove the
        service."""
        tasks = self.engine.list_service_tasks(self.owner, service_ids=[found.service_id])
        ids = [t.task_id for t in tasks]
        if Container.objects.filter(stack=self.stack, engine_id__in=ids).update(draining=True):
            frontier_changed.send_robust(
                sender=Stack, stack_id=self.stack.pk, reason="canary drained"
            )
            time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)
        self.engine.remove_service(found.service_id)

    def end_rollouts(
        self,
        services: list[SwarmServiceInfo],
        tasks: list[SwarmTaskInfo],
        nodes: list[SwarmNodeInfo],
    ) -> bool:
        """A promoted or aborted canary ends once its service runs the wanted spec and is
        settled: the canary is drained and removed. True if one ended."""
        ending = {
            name: r
            for name, r in self.rollouts.items()
            if r.state in (Rollout.State.PROMOTING, Rollout.State.ABORTING)
        }
        if not ending:
            return False
        running = running_tasks(tasks, lost_nodes(nodes))
        own = {s.labels.get(naming.SERVICE, ""): s for s in services if not is_canary(s)}
        ended = False
        for name, rollout in ending.items():
            found = own.get(name)
            if found is None or found.spec_hash != self.wanted.get(name):
                continue
            if not _settled(found, running.get(found.service_id, 0)):
                continue
            for canary in services:
                if is_canary(canary) and canary.labels.get(naming.SERVICE) == name:
                    self.remove_canary(canary)
            promoted = rollout.state == Rollout.State.PROMOTING
            _end_rollout(rollout, Rollout.State.DONE if promoted else Rollout.State.ABORTED)
            self.event(
                "rollout.done" if promoted else "rollout.aborted",
                f"{name}: r{rollout.to_revision} promoted"
                if promoted
                else f"{name}: canary r{rollout.to_revision} removed, r{rollout.from_revision} "
                "kept",
            )
            del self.rollouts[name]
            ended = True
        return ended

    def write_service(
        self,
        name: str,
        request: SwarmServiceRequest,
        found: SwarmServiceInfo | None,
        wanted: str,
        services: list[SwarmServiceInfo],
    ) -> bool:
        """Create the service (once its service_healthy dependencies run) or update it
        when its spec hash differs; True if written."""
        assert self.project is not None
        if found is None:
            waiting = self.unready_dependencies(self.project.services[name], services)
            if waiting:
                self.deferred[name] = waiting
                return False
            self.engine.create_service(request)
            return True
        if found.spec_hash != wanted:
            self.engine.update_service(found.service_id, request)
            return True
        return False

    def unready_dependencies(
        self, service: ServiceSpec, services: list[SwarmServiceInfo]
    ) -> list[str]:
        """The service_healthy dependencies without a running task yet (on Swarm a task
        with a health check runs only once healthy); none while the stack is stopped."""
        if self.stack.desired_state != Stack.Desired.RUNNING:
            return []
        running = {
            s.labels.get(naming.SERVICE, ""): s.replicas_running
            for s in services
            if not is_canary(s)
        }
        return sorted(
            dep
            for dep, condition in service.depends_on.items()
            if condition.condition == "service_healthy" and not running.get(dep)
        )

    def volume_node(self, nodes: list[SwarmNodeInfo]) -> str:
        """The node holding the stack's volumes: pinned at the first deploy and kept,
        whatever becomes of the node (its services wait for it rather than start empty
        elsewhere); "" for a stack without volumes."""
        assert self.project is not None
        stack = self.stack
        if stack.swarm_volume_node or not any(
            uses_volumes(s) for s in self.project.services.values()
        ):
            return stack.swarm_volume_node
        tasks = self.listed.tasks if self.listed else []
        chosen = choose_volume_node(stack, self.project, nodes, tasks)
        if chosen is None:
            raise EngineError(
                "No ready, active node meets the placement of the services with volumes: "
                "the stack's volumes need one node to live on.",
                retryable=True,
            )
        Stack.objects.filter(pk=stack.pk).update(swarm_volume_node=chosen.node_id)
        stack.swarm_volume_node = chosen.node_id
        self.event(
            "stack.volume_node",
            f"The volumes of {stack.name} live on node {chosen.hostname}: the services "
            "mounting them run there.",
        )
        return chosen.node_id

    def ensure_files(self) -> dict[tuple[str, str], tuple[str, str]]:
        """The Swarm secrets and configs holding the current version of each store
        entry the stack uses, created when missing (the value is decrypted only then).
        The stack's objects are listed once (two calls, only for a stack using any)."""
        entries = secret_store.entries_for(self.stack, self.spec)
        self.listed_files = {}
        if not any(entries.values()):
            return {}
        owner = naming.stack_owner(self.stack)
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for kind, by_key in entries.items():
            self.listed_files[kind] = self.engine.list_file_objects(kind, self.owner)
            listed = {o.name: o.object_id for o in self.listed_files[kind]}
            for key, entry in by_key.items():
                name = file_object_name(self.stack, entry)
                object_id = listed.get(name) or self.engine.ensure_file_object(
                    kind,
                    name,
                    secret_store.value_of(entry),
                    file_object_labels(self.stack, entry),
                    owner=owner,
                )
                found[kind, key] = (object_id, name)
        return found

    def prune_files(
        self, keep: set[str], listed: Mapping[str, list[FileObjectInfo]] | None = None
    ) -> list[FileObjectInfo]:
        """Remove the stack's secrets and configs not in `keep` (older versions, entries
        no longer used) that no service uses any more; those left, for the next pass.
        `listed`: the objects as this pass listed them (else listed again)."""
        left = []
        for kind in (Secret.Kind.SECRET, Secret.Kind.CONFIG):
            found = listed.get(kind) if listed is not None else None
            if found is None:
                found = self.engine.list_file_objects(kind, self.owner)
            for obj in found:
                if obj.object_id not in keep and not self.engine.remove_file_object(kind, obj):
                    left.append(obj)
        return left

    def stale_files(self) -> bool:
        """This pass's listing holds objects the services no longer name."""
        keep = {object_id for object_id, _ in self.files.values()}
        return any(o.object_id not in keep for objs in self.listed_files.values() for o in objs)

    def wait_until_settled(self) -> None:
        """Until every service runs its replicas with no update in progress (bounded:
        the next pass mirrors what this one did not wait for)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            services, tasks, nodes = self.observe()
            # Mirrored as it goes: the frontier follows tasks as Swarm replaces them (a
            # rolling update's next batch waits its `delay`; a new task joins the routes
            # within about a second of running).
            self.mirror(services, tasks, nodes)
            running = running_tasks(tasks, lost_nodes(nodes))
            if all(_settled(s, running.get(s.service_id, 0)) for s in services):
                return
            time.sleep(SETTLE_POLL_SECONDS)

    def remove(self, services: list[SwarmServiceInfo]) -> None:
        """Services first, then the overlay network once their tasks are gone."""
        stack = self.stack
        try:
            for found in services:
                self.engine.remove_service(found.service_id)
            deadline = time.monotonic() + SETTLE_SECONDS
            network = naming.stack_network_name(stack)
            while True:
                try:
                    # Accepted while tasks still detach: Swarm then deletes the network
                    # once they have (it stays listed until then).
                    self.engine.remove_overlay_network(network, owner=naming.stack_owner(stack))
                    break
                except EngineError:  # refused while in use by a service's tasks
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
            while self.prune_files(keep=set()):  # their services are gone: soon free
                if time.monotonic() > deadline:
                    raise EngineError("Secrets of the stack are still in use.", retryable=True)
                time.sleep(1.0)
        except EngineError as exc:
            _state(stack, Stack.State.FAILED, f"Removing the stack failed: {exc}")
            return
        self.event("stack.removed", f"Removed {stack.name}")
        Stack.objects.filter(pk=stack.pk).delete()

    # mirror ---------------------------------------------------------------------------------

    @transaction.atomic
    def mirror(
        self,
        services: list[SwarmServiceInfo],
        tasks: list[SwarmTaskInfo],
        nodes: list[SwarmNodeInfo] = (),  # type: ignore[assignment]
    ) -> None:
        """Service rows, Container rows (one per current task: engine id the task id,
        which the driver addresses it by; replica its slot; node the SwarmNode row Swarm
        placed it on, once the host's heartbeat recorded it; address its node's, with the
        host-mode ports published there) and the stack's state; the frontier is told
        when the tasks it may route to changed."""
        assert self.project is not None
        stack = self.stack
        before = _frontier_view(stack)
        addresses = {n.node_id: n.address for n in nodes}
        lost = lost_nodes(nodes)
        running = running_tasks(tasks, lost)
        by_id = {s.service_id: s for s in services}
        rows = _service_rows(stack, self.project)
        revisions = self.task_revisions(services)
        now = timezone.now()
        node_rows = {n.node_id: n for n in SwarmNode.objects.filter(host=self.host)}
        seen: set[str] = set()
        for task in tasks:
            owner = by_id.get(task.service_id)
            if owner is None or task.desired_state != "running":
                continue
            name = owner.labels.get(naming.SERVICE, "")
            if name not in rows:
                continue
            engine_id = task.task_id
            seen.add(engine_id)
            canary = is_canary(owner)
            state, health = _task_state(task)
            reason = task.error
            if task.node_id in lost:  # Swarm has not replaced it yet
                state, health = "unknown", "unhealthy"
                reason = f"its node {lost[task.node_id]} is not ready"
            Container.objects.update_or_create(
                host=self.host,
                engine_id=engine_id,
                defaults={
                    "stack": stack,
                    "service": rows[name],
                    "name": f"{name}{'.canary' if canary else ''}.{task.slot or 0}",
                    "replica": task.slot or 0,
                    "revision": revisions[owner.service_id],
                    "image": task.image,
                    "state": state,
                    "health": health,
                    "health_reason": (reason or "")[:1000],
                    "node": node_rows.get(task.node_id),
                    "address": addresses.get(task.node_id, "") if state == "running" else "",
                    "ports": _published(task, addresses.get(task.node_id, "")),
                    "last_seen_at": now,
                },
            )
        gone = Container.objects.filter(stack=stack).exclude(engine_id__in=seen)
        self.record_lost(list(gone.values_list("engine_id", "name")), tasks, lost)
        gone.delete()
        if _frontier_view(stack) != before:
            transaction.on_commit(
                lambda: frontier_changed.send_robust(
                    sender=Stack, stack_id=stack.pk, reason="swarm tasks"
                )
            )
        unsettled = self.service_health(rows, services, running, nodes)
        self.finish(unsettled, now)

    def service_health(
        self,
        rows: Mapping[str, Service],
        services: list[SwarmServiceInfo],
        running: Mapping[str, int],
        nodes: list[SwarmNodeInfo],
    ) -> list[str]:
        """Each Service row's health from its Swarm service's running tasks (written when
        it changed); why each unsettled one is not there yet."""
        assert self.project is not None
        stack = self.stack
        by_name = {s.labels.get(naming.SERVICE, ""): s for s in services if not is_canary(s)}
        unsettled: list[str] = []
        for name, row in rows.items():
            found = by_name.get(name)
            count = running.get(found.service_id, 0) if found is not None else 0
            health, reason = _service_health(found, count)
            if found is None and name in self.deferred:
                health = Service.Health.STARTING
                reason = f"waiting for {', '.join(self.deferred[name])} to be healthy (depends_on)"
            spec = self.project.services.get(name)
            if health == Service.Health.STARTING and spec is not None and uses_volumes(spec):
                reason = _waiting_for_volume_node(stack, nodes) or reason
            if (row.health, row.health_reason) != (health, reason):
                row.health, row.health_reason = health, reason
                row.save(update_fields=["health", "health_reason", "updated_at"])
            if health not in (Service.Health.HEALTHY, Service.Health.STOPPED):
                unsettled.append(f"{name}: {reason}")
        for found in services:
            count = running.get(found.service_id, 0)
            if is_canary(found) and count < found.replicas_desired:
                name = found.labels.get(naming.SERVICE, "")
                unsettled.append(
                    f"{name} canary: {count} of {found.replicas_desired} tasks running"
                )
        return unsettled

    def task_revisions(self, services: list[SwarmServiceInfo]) -> dict[str, int]:
        """Service id -> the revision its tasks run, as the frontier weighs them: a
        canary's (its label), the old one for a service whose canary is running, else
        the stack's current revision."""
        found = {}
        for service in services:
            name = service.labels.get(naming.SERVICE, "")
            rollout = self.rollouts.get(name)
            label = service.labels.get(CANARY_LABEL, "")
            if label.isdecimal():
                found[service.service_id] = int(label)
            elif rollout is not None and rollout.state == Rollout.State.CANARY:
                found[service.service_id] = rollout.from_revision
            else:
                found[service.service_id] = self.revision
        return found

    def record_lost(
        self, gone: list[tuple[str, str]], tasks: list[SwarmTaskInfo], lost: Mapping[str, str]
    ) -> None:
        """One stack Event for the replicas whose node was lost (Swarm replaces them):
        the tenant sees it on the stack, where the host's node Events are admins' only."""
        node_of = {t.task_id: t.node_id for t in tasks}
        names: dict[str, list[str]] = {}
        for engine_id, name in gone:
            node = node_of.get(engine_id, "")
            if node in lost:
                names.setdefault(lost[node], []).append(name)
        for hostname, replicas in sorted(names.items()):
            self.event(
                "stack.replicas.lost",
                f"{', '.join(sorted(replicas))}: node {hostname} is down; Swarm starts "
                "replacements on the other nodes.",
                outcome=Event.Outcome.FAILURE,
            )

    def finish(self, unsettled: list[str], now: Any) -> None:
        stack = self.stack
        if self.failure:
            state, reason = Stack.State.FAILED, self.failure
        elif not unsettled:
            stopped = stack.desired_state == Stack.Desired.STOPPED
            state = Stack.State.STOPPED if stopped else Stack.State.HEALTHY
            reason = ""
        else:
            state, reason = Stack.State.DEPLOYING, "; ".join(unsettled)[:1000]
        fields: dict[str, Any] = {
            "state": state,
            "state_reason": reason,
            "last_reconciled_at": now,
        }
        if stack.operation and (state != Stack.State.DEPLOYING or _expired(stack)):
            fields.update(operation="", operation_deadline=None, cancel_requested=False)
        Stack.objects.filter(pk=stack.pk).update(**fields)
        for key, value in fields.items():
            setattr(stack, key, value)

    def event(self, action: str, message: str, *, outcome: str = Event.Outcome.SUCCESS) -> None:
        record_event(
            action,
            tenant=self.stack.tenant,
            obj=self.stack,
            outcome=outcome,
            message=message,
            data={"stack": self.stack.pk},
        )


def _routed_ports(stack: Stack) -> dict[str, set[int]]:
    """Service name -> the container ports the stack's routes send to."""
    routed: dict[str, set[int]] = {}
    for name, port in Route.objects.filter(stack=stack).values_list("service__name", "port"):
        routed.setdefault(name, set()).add(port)
    return routed


def _active_canaries(stack: Stack) -> dict[str, Rollout]:
    """Service name -> its active canary rollout (a swarm has no other rollout rows:
    Swarm rolls the rest itself)."""
    active = Rollout.objects.filter(
        stack=stack, strategy=Rollout.Strategy.CANARY, state__in=Rollout.ACTIVE
    )
    return {r.service: r for r in active}


def _end_rollout(rollout: Rollout, state: str, message: str = "") -> None:
    rollout.state = state
    rollout.message = message[:2000]
    rollout.finished_at = timezone.now()
    rollout.save(update_fields=["state", "message", "finished_at", "updated_at"])
    stack_id = rollout.stack_id
    transaction.on_commit(
        lambda: frontier_changed.send_robust(sender=Stack, stack_id=stack_id, reason="rollout")
    )


def _service_rows(stack: Stack, project: ComposeProject) -> dict[str, Service]:
    """The stack's Service rows, made to match the project (as mirror.py does)."""
    rows = {s.name: s for s in Service.objects.filter(stack=stack)}
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


def _published(task: SwarmTaskInfo, node_address: str) -> list[dict[str, Any]]:
    """A task's host-mode ports as a container's `ports` are mirrored."""
    return [
        {"container_port": target, "protocol": "tcp", "host_ip": node_address, "host_port": port}
        for target, port in task.ports
    ]


def _frontier_view(stack: Stack) -> list[tuple]:
    """What the frontier reads of the stack's tasks (frontier.snapshot)."""
    rows = Container.objects.filter(stack=stack).order_by("pk")
    return list(
        rows.values_list("pk", "state", "health", "draining", "address", "ports", "revision")
    )


def lost_nodes(nodes: list[SwarmNodeInfo]) -> dict[str, str]:
    """Node id -> hostname of the nodes the manager says are not ready (down, unknown,
    disconnected): a task there is not counted as running, whatever Swarm says of it."""
    return {n.node_id: n.hostname for n in nodes if n.state != "ready"}


def running_tasks(tasks: list[SwarmTaskInfo], lost: Mapping[str, str]) -> dict[str, int]:
    """Running tasks per service id, counted from the tasks: those Swarm wants running,
    that run, on a node that is not lost. Not the service's `RunningTasks`, which counts
    every task whose last report was "running": a lost node's tasks keep that state (and
    their replacements are counted too) until the node comes back, so a service would
    look whole with half its replicas gone."""
    counts: dict[str, int] = {}
    for task in tasks:
        if (
            task.desired_state == "running"
            and task.state in _RUNNING_STATES
            and task.node_id not in lost
        ):
            counts[task.service_id] = counts.get(task.service_id, 0) + 1
    return counts


def _settled(service: SwarmServiceInfo, running: int) -> bool:
    return running == service.replicas_desired and service.update_state not in _UPDATING


def _expired(stack: Stack) -> bool:
    deadline = getattr(stack, "operation_deadline", None)
    return deadline is not None and timezone.now() > deadline


def _task_state(task: SwarmTaskInfo) -> tuple[str, str]:
    """(container state, health) of a task, as the stack page shows a container's."""
    if task.state in _RUNNING_STATES:
        return "running", "healthy"
    if task.state in _STARTING_STATES:
        return "created", "starting"
    return "exited", "unhealthy"


def _service_health(found: SwarmServiceInfo | None, running: int) -> tuple[str, str]:
    """A service's health from its spec's replicas and its running tasks
    (`running_tasks`)."""
    if found is None:
        return Service.Health.UNKNOWN, "not created on the swarm yet"
    if found.replicas_desired == 0:
        return Service.Health.STOPPED, ""
    if found.update_state in _UPDATING:
        message = found.update_message or found.update_state
        return Service.Health.STARTING, f"update {found.update_state}: {message}"
    if running < found.replicas_desired:
        return Service.Health.STARTING, f"{running} of {found.replicas_desired} tasks running"
    return Service.Health.HEALTHY, ""


def _waiting_for_volume_node(stack: Stack, nodes: list[SwarmNodeInfo]) -> str:
    """Why a service with volumes does not run, when its node cannot take it."""
    pinned = stack.swarm_volume_node
    if not pinned or not nodes:
        return ""
    node = next((n for n in nodes if n.node_id == pinned), None)
    if node is None:
        return (
            f"waiting for node {pinned[:12]}, which held the stack's volumes and has left "
            "the swarm: Berth does not start the service elsewhere without its data."
        )
    if node.state != "ready" or node.availability != "active":
        return (
            f"waiting for node {node.hostname} ({node.state}, {node.availability}), which "
            "holds the stack's volumes: Berth does not move the service away from its data."
        )
    return ""


def _state(stack: Stack, state: str, reason: str) -> None:
    Stack.objects.filter(pk=stack.pk).update(state=state, state_reason=reason)
    stack.state, stack.state_reason = state, reason


def reconcile_cluster(host: Host) -> dict[str, int]:
    """The periodic pass over a swarm: its services, tasks and nodes listed once, then
    each stack of the environments targeting it, under its lease, one after another (a
    stack another worker holds is skipped), then what stacks no longer in the database
    left there (`remove_orphans`)."""
    from apps.deployments.reconciler import claim, release  # the engine path's leases

    stacks = Stack.objects.filter(environment__hosts=host).select_related(
        "tenant", "environment", "current_revision"
    )
    done = 0
    with get_engine(host) as engine:
        try:
            listed = ClusterListing.of_cluster(engine)
        except EngineError as exc:
            for stack in stacks:
                _state(stack, Stack.State.UNKNOWN, f"The swarm is unreachable: {exc}")
            return {"stacks": 0, "orphans": 0, "api_calls": getattr(engine, "api_calls", 0)}
        handled: set[str] = set()
        for stack in stacks.order_by("pk"):
            handled.add(str(stack.pk))
            token = claim(stack.pk)
            if token is None:
                continue
            try:
                SwarmRun(stack, host, engine, listed).execute()
                done += 1
                refresh_pull_credentials(stack, engine, listed)
            except Exception:  # one broken stack must not stop the others
                log.exception("swarm reconcile of stack %s failed", stack.pk)
            finally:
                release(stack.pk, token)
        try:
            orphans = remove_orphans(host, engine, listed, handled)
        except EngineError as exc:  # the next pass tries again
            log.warning("swarm orphan sweep on host %s failed: %s", host.pk, exc)
            orphans = 0
        return {"stacks": done, "orphans": orphans, "api_calls": getattr(engine, "api_calls", 0)}


def reconcile_swarm_stack(stack: Stack, host: Host) -> None:
    """The swarm branch of `reconciler.reconcile_stack` (the caller holds the lease)."""
    with get_engine(host) as engine:
        SwarmRun(stack, host, engine).execute()


# --- orphans: this installation's objects whose stack is gone from the database ---------------


@dataclass
class OrphanStack:
    """What the swarm holds of one stack id the database no longer knows."""

    stack_id: str
    tenant_id: str = ""
    services: list[SwarmServiceInfo] = field(default_factory=list)
    networks: list[OverlayNetworkInfo] = field(default_factory=list)
    files: list[tuple[str, FileObjectInfo]] = field(default_factory=list)  # (kind, object)

    def newest(self) -> float:
        """When the youngest of its objects was made (0 when none says)."""
        stamps = [
            *(s.created_at for s in self.services),
            *(n.created_at for n in self.networks),
            *(o.created_at for _, o in self.files),
        ]
        return max(stamps, default=0.0)


def orphan_stacks(
    listed: ClusterListing, files: Mapping[str, list[FileObjectInfo]]
) -> dict[str, OrphanStack]:
    """This installation's services, stack networks, secrets and configs grouped by the
    stack id on their labels, for the ids no Stack row has (whatever its environment or
    host: a stack that exists is its own run's business, as on an engine). Everything
    listed carries this installation's labels (the list calls filter on them), so
    another Berth's objects, and objects without Berth's labels, are never candidates.
    An environment's overlay has no stack id and is left alone (other stacks use it)."""
    found: dict[str, OrphanStack] = {}

    def group(labels: Mapping[str, str]) -> OrphanStack | None:
        stack_id = labels.get(naming.STACK, "")
        if not stack_id.isdecimal():
            return None
        orphan = found.setdefault(stack_id, OrphanStack(stack_id))
        orphan.tenant_id = orphan.tenant_id or labels.get(naming.TENANT_ID, "")
        return orphan

    for service in listed.services:
        if (orphan := group(service.labels)) is not None:
            orphan.services.append(service)
    for network in listed.network_objects:
        if (orphan := group(network.labels)) is not None:
            orphan.networks.append(network)
    for kind, objects in files.items():
        for obj in objects:
            if (orphan := group(obj.labels)) is not None:
                orphan.files.append((kind, obj))
    if not found:
        return {}
    ids = [int(k) for k in found]
    existing = {str(pk) for pk in Stack.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    return {k: v for k, v in found.items() if k not in existing}


def remove_orphans(
    host: Host, engine: SwarmCluster, listed: ClusterListing, handled: Collection[str] = ()
) -> int:
    """Remove the swarm's services, stack overlay networks, secrets and configs of this
    installation whose stack is no longer in the database (a stack row deleted while
    the swarm was unreachable, a pass that died between its engine calls and its
    rows ...): they would run, hold ports and names, and nobody could see or remove
    them through Berth. The periodic pass's sweep, as `reconciler._remove_orphans` is
    for an engine's containers, with the same rules:

    - only what was made more than BERTH_ORPHAN_GRACE_SECONDS ago, judged by the stack's
      youngest object (a stack being created must not lose its fresh services);
    - never a retiring tenant's (its retirement owns its objects until it is done);
    - services first, then the network and the secrets and configs once their tasks
      are gone (refused while in use: the next pass finishes);
    - named volumes on the nodes are left: data is removed by a person (inventory).

    One platform Event per stack id cleaned (on the host: the tenant may be gone too).
    `handled`: the stack ids this pass reconciled (one its run removed is no orphan).
    Returns the number of objects removed. Two calls (secrets, configs) besides the
    pass's listing, and removal calls only for orphans."""
    from apps.deployments.retirement import retiring_tenant_ids

    files = {
        kind: engine.list_file_objects(kind) for kind in (Secret.Kind.SECRET, Secret.Kind.CONFIG)
    }
    orphans = {k: v for k, v in orphan_stacks(listed, files).items() if k not in handled}
    if not orphans:
        return 0
    retiring = retiring_tenant_ids()
    cutoff = time.time() - settings.BERTH_ORPHAN_GRACE_SECONDS
    removed = 0
    for stack_id, orphan in sorted(orphans.items(), key=lambda kv: int(kv[0])):
        if orphan.tenant_id in retiring or orphan.newest() > cutoff:
            continue
        gone = _remove_orphan(engine, orphan)
        removed += len(gone)
        if gone:
            record_event(
                "host.swarm.orphans_removed",
                obj=host,
                message=(
                    f"Removed from the swarm what stack #{stack_id} left (no such stack in "
                    f"Berth any more): {', '.join(gone)}"
                )[:1000],
                data={"orphan_stack": int(stack_id), "removed": gone},
            )
    return removed


def _remove_orphan(engine: SwarmCluster, orphan: OrphanStack) -> list[str]:
    """Remove what one orphan stack left; the names removed (the rest waits). Its
    services and networks are listed again first (two calls, for an orphan only): the
    pass's listing predates its stacks' runs, and a stack removed by its own run
    meanwhile has no row either."""
    label = {naming.STACK: orphan.stack_id, naming.TENANT_ID: orphan.tenant_id}
    gone: list[str] = []
    services = engine.list_services(label)
    for service in services:
        engine.remove_service(service.service_id)  # checks the installation label again
        gone.append(f"service {service.name}")
    if services:
        return gone  # the network and files are in use until the tasks are gone
    owner = {
        INSTALLATION_LABEL: installation_id(),
        naming.STACK: orphan.stack_id,
        naming.TENANT_ID: orphan.tenant_id,
    }
    for network in engine.list_overlay_network_infos(label):
        try:
            engine.remove_overlay_network(network.name, owner=owner)
        except EngineError as exc:  # still in use by tasks shutting down
            log.info("orphan network %s not removed yet: %s", network.name, exc)
            continue
        gone.append(f"network {network.name}")
    for kind, obj in orphan.files:
        if engine.remove_file_object(kind, obj):
            gone.append(f"{kind} {obj.name}")
    return gone


# --- the nodes' pull credential ---------------------------------------------------------------

#: How a task that could not pull its image fails (the node's pull failed, then the
#: container could not be created from an image it does not have).
PULL_FAILED = "No such image"


def refresh_pull_credentials(stack: Stack, engine: SwarmCluster, listed: ClusterListing) -> int:
    """Give a fresh pull credential to each of the stack's services that lacks replicas
    because a task could not pull its image: Swarm pulls with the credential handed over
    at the service's last create or update, and Berth's deployer credential lasts five
    minutes, so a task placed later on a node without the image (a node lost or
    drained, a new node) would be rejected forever. The tenant's right to the image is
    checked again, as for a deploy. One update per such service per pass, only while it
    is short of replicas; the number refreshed."""
    services, tasks = listed.of(stack)
    running = running_tasks(tasks, lost_nodes(listed.nodes))
    refused = {t.service_id for t in tasks if t.error.startswith(PULL_FAILED)}
    refreshed = 0
    for service in services:
        if service.service_id not in refused:
            continue
        if running.get(service.service_id, 0) >= service.replicas_desired:
            continue
        try:
            auth = _authorised(service.image, stack.tenant.slug)
            if auth:
                engine.refresh_registry_auth(service.service_id, auth)
                refreshed += 1
        except EngineError as exc:
            log.warning("pull credential of %s not refreshed: %s", service.name, exc)
            continue
        name = service.labels.get(naming.SERVICE, service.name)
        record_event(
            "stack.pull_credential",
            tenant=stack.tenant,
            obj=stack,
            message=(
                f"{name}: a task could not pull {service.image} on its node; the nodes "
                "were given a fresh pull credential."
            ),
            data={"stack": stack.pk},
        )
    return refreshed
