"""The Swarm driver: a Docker Swarm cluster reached through one of its managers' engines.

What runs today: the cluster's identity and size (`info`, `cluster_state`), its nodes,
setting a node's availability (drain, pause, active) and the tasks on each node, and the
Swarm services a stack is deployed as (apps/deployments/swarm_reconcile.py calls them).
Every container-level operation (create, start, stop ... a container on the manager's own
engine) raises a non-retryable EngineError rather than acting as if it were one host.

The service building blocks: overlay networks (`ensure_overlay_network`), secrets and
configs (`ensure_file_object`, `list_file_objects`, `remove_file_object`), services
from a `SwarmServiceRequest` (`create_service`, `update_service`, `remove_service`),
one-call listings of this installation's services and their tasks, and a service's
merged log. Reads
(`list_managed`, `list_networks` ...) answer for the manager's engine, where Berth has
created nothing, so inventory pages and sweeps asking every host see an empty host.

One task of Berth's services is addressed by its task id, as a container is by its
id on an engine (the Container rows of a swarm stack hold task ids): `logs` reads it
through the manager's task logs endpoint, whatever node it runs on; `inspect_container`
answers from the task. Stats, shells and the engine's inspect document need the
container's own engine (`task_engine`): the registered endpoint's for a task on its
node (the manager Berth talks to); for a task elsewhere, the node's own engine endpoint
that a platform admin gave it (`NodeEngine`, from the SwarmNode row). That engine is
used only after it proved to be the task's node (its `docker info` Swarm.NodeID) and
the container found there proved to be the task's (its swarm task id and Berth's owner
labels), so an endpoint pointing at the wrong engine never opens someone else's
container. A node without one is refused with `NODE_ENGINE_NEEDED`.

The parsing of the engine's node and task documents is plain functions over dicts
(`parse_node`, `parse_task`, `parse_swarm`, `task_status`), tested without an engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import docker
from django.conf import settings

from apps.hosts.engine.client import DockerEngine
from apps.hosts.engine.containers import ContainerStatus
from apps.hosts.engine.driver import EngineInfo, ManagedContainer
from apps.hosts.engine.errors import EngineError, engine_errors
from apps.hosts.engine.labels import (
    INSTALLATION_LABEL,
    LABEL_PREFIX,
    foreign_owner,
    installation_id,
    label_filters,
    managed_labels,
)
from apps.hosts.engine.streams import (
    EngineMessageDemultiplexer,
    LogStream,
    ShellSession,
    StatsStream,
    _wait_forever,
)
from apps.hosts.engine.swarm_services import (
    SPEC_HASH_LABEL,
    SwarmServiceRequest,
    registry_auth_header,
    service_spec,
)
from apps.hosts.engine.tls import TLSFiles, write_tls_files

#: The availabilities Swarm knows, as Berth offers them.
AVAILABILITIES = ("active", "pause", "drain")
#: What needs a task's own engine, as `node_engine_needed` names it.
NODE_ENGINE_USES = {
    "shell": "The shell needs",
    "stats": "Live stats need",
    "inspect": "The engine's inspect view needs",
}
NODE_ENGINE_NEEDED = (
    "{uses} the node's engine: this task runs on node {node}, whose engine Berth does not "
    "reach (a platform admin sets the node's engine endpoint on the host page). Its logs "
    "are read through the manager."
)
NODE_ENGINE_MISMATCH = (
    "{uses} the node's engine, but the engine endpoint set for node {node}, where this task "
    "runs, reaches {found}: Berth will not use it. A platform admin must correct the "
    "node's engine endpoint on the host page."
)
NOT_THE_TASKS_CONTAINER = (
    "{uses} the task's container, but the container node {node}'s engine has under that "
    "id {problem}: Berth will not open it."
)
#: Labels Swarm puts on a task's container: which task, on which node.
TASK_ID_LABEL = "com.docker.swarm.task.id"
NODE_ID_LABEL = "com.docker.swarm.node.id"
NOT_DEPLOYABLE = (
    "This host ({endpoint}) is a Swarm manager: a stack on it runs as Swarm services, "
    "and single containers (create, start, stop, restart, remove one task), their "
    "networks, volumes and images cannot be acted on there: Swarm keeps each "
    "service's tasks."
)


@dataclass(frozen=True)
class SwarmNodeInfo:
    """One node as the manager describes it (field names match the SwarmNode model)."""

    node_id: str
    hostname: str
    role: str  # manager, worker
    availability: str  # active, pause, drain
    state: str  # ready, down, unknown, disconnected
    address: str
    engine_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cpus: float = 0.0
    memory_bytes: int = 0
    manager_status: str = ""  # leader, reachable, unreachable; "" for a worker
    message: str = ""


@dataclass(frozen=True)
class SwarmTaskInfo:
    """One task (a service's replica on a node) as the manager lists it."""

    task_id: str
    service: str
    slot: int | None
    node_id: str
    state: str  # new, pending, assigned, preparing, starting, running, complete, failed ...
    desired_state: str
    container_id: str = ""
    image: str = ""
    message: str = ""
    error: str = ""
    service_id: str = ""
    # (container port, port published on its node): host-mode ports the node picked
    ports: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ManagedTask:
    """One task of this installation's services with what the collectors need: its node,
    its container (once it has one), its name as Berth's Container rows give it
    (`<service>.<slot>`) and the owner labels (`io.berth.`) its container carries."""

    task_id: str
    node_id: str
    container_id: str
    state: str
    desired_state: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SwarmServiceInfo:
    """One of Berth's services as the manager lists it (with its task counts)."""

    service_id: str
    name: str
    labels: dict[str, str]
    spec_hash: str
    image: str
    replicas_desired: int
    replicas_running: int
    version: int
    update_state: str = ""  # updating, paused, completed, rollback_started ... ("" never updated)
    update_message: str = ""
    created_at: float = 0.0  # Unix time (0: not said)


@dataclass(frozen=True)
class FileObjectInfo:
    """A Swarm secret or config of this installation (never its data)."""

    object_id: str
    name: str
    labels: dict[str, str]
    created_at: float = 0.0  # Unix time (0: not said)


@dataclass(frozen=True)
class OverlayNetworkInfo:
    """One of this installation's swarm-scoped networks, with its labels."""

    network_id: str
    name: str
    labels: dict[str, str]
    created_at: float = 0.0  # Unix time (0: not said)


@dataclass(frozen=True)
class NodeEngine:
    """A node's own engine endpoint, as a platform admin gave it (the SwarmNode row's
    `engine_*` fields): how Berth reaches the containers of the tasks on that node."""

    node_id: str
    hostname: str
    endpoint: str
    tls_ca_cert: str = ""
    tls_client_cert: str = ""
    tls_client_key: str = ""
    #: The SwarmNode row's id (its TLS files' folder); None for a check before saving.
    row_id: int | None = None

    @property
    def name(self) -> str:
        return self.hostname or self.node_id[:12]


@dataclass(frozen=True)
class SwarmInfo:
    """The cluster as a whole, from the manager's `info`."""

    cluster_id: str
    node_id: str  # the manager's own node
    managers: int
    nodes: int


@dataclass(frozen=True)
class ClusterState:
    """Everything a heartbeat records of a cluster, read in one pass (four engine calls
    whatever the number of nodes and tasks)."""

    info: EngineInfo
    swarm: SwarmInfo
    nodes: list[SwarmNodeInfo]
    tasks: list[SwarmTaskInfo]

    def tasks_on(self, node_id: str) -> list[SwarmTaskInfo]:
        return [t for t in self.tasks if t.node_id == node_id]


# --- parsing (pure) ------------------------------------------------------------------------


def node_engine_needed(what: str, node: str) -> str:
    """Why a task's shell, stats or inspect view (`what`, a key of NODE_ENGINE_USES) is
    refused: it runs on `node`, whose engine Berth cannot reach."""
    return NODE_ENGINE_NEEDED.format(uses=NODE_ENGINE_USES[what], node=node)


def engine_identity_problem(info: Mapping[str, Any], node_id: str) -> str:
    """What the engine whose `docker info` is `info` is, when it is not the Swarm node
    `node_id` ("" when it is): "another node (id ...)" or "an engine outside the swarm"."""
    swarm = info.get("Swarm") or {}
    seen = str(swarm.get("NodeID") or "")
    if swarm.get("LocalNodeState") != "active" or not seen:
        return "an engine outside the swarm"
    if seen != node_id:
        return f"another node's engine (node id {seen[:12]})"
    return ""


def task_container_problem(task: Mapping[str, Any], attrs: Mapping[str, Any]) -> str:
    """Why the container `attrs` (an engine's inspect document) is not the container of
    `task` (the manager's task document), "" when it is: it must carry the task's id
    and node as Swarm labels them, and every one of the task's `io.berth.` owner labels
    (installation, tenant, environment, stack, service), which Berth set on the service."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    spec = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    return task_labels_problem(
        str(task.get("ID") or ""), str(task.get("NodeID") or ""), spec, labels
    )


def task_labels_problem(
    task_id: str, node_id: str, owner: Mapping[str, str], labels: Mapping[str, str]
) -> str:
    """Why a container with `labels` is not the container of task `task_id` on node
    `node_id` whose container spec carries `owner` ("" when it is): the task's id and
    node as Swarm labels them, and every one of the task's `io.berth.` owner labels."""
    if not task_id or labels.get(TASK_ID_LABEL) != task_id:
        return "a container of another task"
    if labels.get(NODE_ID_LABEL) != node_id:
        return "a container of another node"
    wanted = {str(k): str(v) for k, v in owner.items() if str(k).startswith(LABEL_PREFIX)}
    wanted[INSTALLATION_LABEL] = installation_id()
    reason = foreign_owner(labels, wanted)
    return f"a container that is not the task's ({reason})" if reason else ""


def _host_part(addr: str) -> str:
    host, sep, port = addr.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else addr


def parse_node(doc: Mapping[str, Any]) -> SwarmNodeInfo:
    """A node document of `GET /nodes` as Berth keeps it. A manager may report its
    status address as 0.0.0.0 (engine 20.10 with a wildcard listen address); its
    manager address says where it really is."""
    spec = doc.get("Spec") or {}
    desc = doc.get("Description") or {}
    status = doc.get("Status") or {}
    manager = doc.get("ManagerStatus") or {}
    resources = desc.get("Resources") or {}
    address = str(status.get("Addr") or "")
    if address in ("", "0.0.0.0") and manager.get("Addr"):  # noqa: S104 - a reading
        address = _host_part(str(manager["Addr"]))
    manager_status = ""
    if manager:
        manager_status = "leader" if manager.get("Leader") else str(manager.get("Reachability", ""))
    return SwarmNodeInfo(
        node_id=str(doc.get("ID") or ""),
        hostname=str(desc.get("Hostname") or spec.get("Name") or ""),
        role=str(spec.get("Role") or ""),
        availability=str(spec.get("Availability") or ""),
        state=str(status.get("State") or "unknown"),
        address=address,
        engine_version=str((desc.get("Engine") or {}).get("EngineVersion") or ""),
        labels={str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
        cpus=round(int(resources.get("NanoCPUs") or 0) / 1e9, 3),
        memory_bytes=int(resources.get("MemoryBytes") or 0),
        manager_status=manager_status,
        message=str(status.get("Message") or ""),
    )


def parse_task(doc: Mapping[str, Any], service_names: Mapping[str, str]) -> SwarmTaskInfo:
    """A task document of `GET /tasks`; `service_names` maps service ids to names (a task
    names only its service's id)."""
    status = doc.get("Status") or {}
    container = (doc.get("Spec") or {}).get("ContainerSpec") or {}
    slot = doc.get("Slot")
    service_id = str(doc.get("ServiceID") or "")
    return SwarmTaskInfo(
        task_id=str(doc.get("ID") or ""),
        service=service_names.get(service_id, service_id[:12]),
        slot=int(slot) if slot is not None else None,
        node_id=str(doc.get("NodeID") or ""),
        state=str(status.get("State") or ""),
        desired_state=str(doc.get("DesiredState") or ""),
        container_id=str((status.get("ContainerStatus") or {}).get("ContainerID") or ""),
        image=str(container.get("Image") or "").split("@", 1)[0],
        message=str(status.get("Message") or ""),
        error=str(status.get("Err") or ""),
        service_id=service_id,
        ports=_published_ports(status),
    )


def parse_managed_task(doc: Mapping[str, Any]) -> ManagedTask:
    """A task document of `GET /tasks` as the collectors use it; its name is
    `<service>.<slot>` (`<service>.canary.<slot>` for a canary) from its owner labels, as
    Berth's Container rows name a task."""
    status = doc.get("Status") or {}
    spec = ((doc.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    labels = {str(k): str(v) for k, v in spec.items() if str(k).startswith(LABEL_PREFIX)}
    canary = ".canary" if labels.get(LABEL_PREFIX + "canary") else ""
    service = labels.get(LABEL_PREFIX + "service", "")
    return ManagedTask(
        task_id=str(doc.get("ID") or ""),
        node_id=str(doc.get("NodeID") or ""),
        container_id=str((status.get("ContainerStatus") or {}).get("ContainerID") or ""),
        state=str(status.get("State") or ""),
        desired_state=str(doc.get("DesiredState") or ""),
        name=f"{service}{canary}.{doc.get('Slot') or 0}",
        labels=labels,
    )


def _published_ports(status: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    """A task's host-mode ports (the engine may list one twice, per address family)."""
    found = (
        (int(p["TargetPort"]), int(p["PublishedPort"]))
        for p in (status.get("PortStatus") or {}).get("Ports") or ()
        if p.get("TargetPort") and p.get("PublishedPort")
    )
    return tuple(dict.fromkeys(found))


def parse_service(doc: Mapping[str, Any]) -> SwarmServiceInfo:
    """A service document of `GET /services?status=true`."""
    spec = doc.get("Spec") or {}
    labels = {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()}
    replicated = (spec.get("Mode") or {}).get("Replicated") or {}
    status = doc.get("ServiceStatus") or {}
    update = doc.get("UpdateStatus") or {}
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return SwarmServiceInfo(
        service_id=str(doc.get("ID") or ""),
        name=str(spec.get("Name") or ""),
        labels=labels,
        spec_hash=labels.get(SPEC_HASH_LABEL, ""),
        image=str(container.get("Image") or "").split("@", 1)[0],
        replicas_desired=int(replicated.get("Replicas") or status.get("DesiredTasks") or 0),
        replicas_running=int(status.get("RunningTasks") or 0),
        version=int((doc.get("Version") or {}).get("Index") or 0),
        update_state=str(update.get("State") or ""),
        update_message=str(update.get("Message") or ""),
        created_at=parse_timestamp(doc.get("CreatedAt")),
    )


def parse_timestamp(value: Any) -> float:
    """An engine's RFC 3339 time ("2026-01-02T03:04:05.123456789Z", nanoseconds, or a
    +hh:mm offset) as Unix time; 0.0 when missing or unreadable."""
    text = str(value or "").strip()
    if not text:
        return 0.0
    head, dot, rest = text.partition(".")
    zone = ""
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        head = f"{head}.{digits[:6].ljust(6, '0')}"
    else:
        for sign in ("Z", "+", "-"):
            at = head.find(sign, 10)  # after the date's own hyphens
            if at != -1:
                head, zone = head[:at], head[at:]
                break
    zone = "+00:00" if zone in ("", "Z") else zone
    try:
        return datetime.fromisoformat(head + zone).timestamp()
    except ValueError:
        return 0.0


_CREATED_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}


def task_status(doc: Mapping[str, Any]) -> ContainerStatus:
    """A task document of `GET /tasks/{id}` as a container's status: "running", "created"
    (still being scheduled or started) or "exited" (complete, failed, shut down,
    rejected, orphaned ...), with its container's exit code."""
    status = doc.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    state = str(status.get("State") or "")
    shown = "running" if state == "running" else "created" if state in _CREATED_STATES else "exited"
    labels = ((doc.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    exit_code = container.get("ExitCode")
    return ContainerStatus(
        id=str(doc.get("ID") or ""),
        name=str(doc.get("Name") or ""),
        state=shown,
        health="",
        health_output="",
        exit_code=int(exit_code) if exit_code is not None and shown == "exited" else None,
        restart_count=0,
        started_at=str(status.get("Timestamp") or ""),
        ports=[],
        labels={str(k): str(v) for k, v in labels.items()},
        error=str(status.get("Err") or ""),
    )


def parse_swarm(info: Mapping[str, Any], endpoint: str) -> SwarmInfo:
    """The `Swarm` part of an engine's info, refused unless the engine is an active
    manager: a worker cannot list nodes or change them, and a lone engine is no cluster."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state != "active":
        raise EngineError(
            f"The engine at {endpoint} is not part of an active swarm (its state: {state}); "
            "register it as a single engine, or run `docker swarm init` on it first.",
            retryable=state in ("pending", "locked"),
        )
    if not swarm.get("ControlAvailable"):
        raise EngineError(
            f"The engine at {endpoint} is a swarm worker, not a manager: register a "
            "manager's endpoint for a Swarm cluster.",
            retryable=False,
        )
    return SwarmInfo(
        cluster_id=str((swarm.get("Cluster") or {}).get("ID") or ""),
        node_id=str(swarm.get("NodeID") or ""),
        managers=int(swarm.get("Managers") or 0),
        nodes=int(swarm.get("Nodes") or 0),
    )


def cluster_info(
    manager: EngineInfo, nodes: list[SwarmNodeInfo], tasks: list[SwarmTaskInfo]
) -> EngineInfo:
    """The Host row's figures for a cluster: the manager's engine version and OS, the
    CPUs and memory of its usable nodes (ready, not drained), and its tasks as containers."""
    usable = [n for n in nodes if n.state == "ready" and n.availability != "drain"]
    return EngineInfo(
        engine_version=manager.engine_version,
        api_version=manager.api_version,
        operating_system=manager.operating_system,
        cpus=int(sum(n.cpus for n in usable)),
        memory_bytes=sum(n.memory_bytes for n in usable),
        containers_running=sum(1 for t in tasks if t.state == "running"),
        containers_total=sum(1 for t in tasks if t.desired_state != "shutdown"),
    )


# --- the driver ----------------------------------------------------------------------------


class SwarmCluster(DockerEngine):
    """A Swarm cluster through one manager's engine (unix socket or TCP + TLS), and the
    engines of the nodes a platform admin gave one (`node_engines`, read when first
    needed)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float,
        tls: TLSFiles | None = None,
        tls_verify: bool = True,
        node_engines: Callable[[], Iterable[NodeEngine]] | None = None,
    ) -> None:
        super().__init__(endpoint, timeout=timeout, tls=tls, tls_verify=tls_verify)
        self._node_engines_source = node_engines
        self._node_engines: dict[str, NodeEngine] | None = None

    def __repr__(self) -> str:
        return f"<SwarmCluster {self.endpoint}>"

    def swarm(self) -> SwarmInfo:
        client = self._docker
        with self._errors():
            data = client.info()
        return parse_swarm(data, self.endpoint)

    def info(self) -> EngineInfo:
        """Cluster-level figures (see `cluster_info`); refused unless a manager answers."""
        return self.cluster_state().info

    def cluster_state(self) -> ClusterState:
        """The cluster, its nodes and every task, in four calls to the manager."""
        client = self._docker
        with self._errors():
            data = client.info()
        swarm = parse_swarm(data, self.endpoint)
        manager = self._info_from(data)
        nodes = self.list_nodes()
        tasks = self.list_tasks()
        return ClusterState(
            info=cluster_info(manager, nodes, tasks), swarm=swarm, nodes=nodes, tasks=tasks
        )

    def list_nodes(self) -> list[SwarmNodeInfo]:
        api = self._docker.api
        with self._errors():
            found = api.nodes()
        return sorted(
            (parse_node(doc) for doc in found), key=lambda n: (n.role != "manager", n.hostname)
        )

    def list_tasks(self, node_id: str | None = None) -> list[SwarmTaskInfo]:
        """Tasks (of every service, or on one node), newest state first per slot. One
        call for the services' names, one for the tasks."""
        api = self._docker.api
        with self._errors():
            names = {s["ID"]: s["Spec"]["Name"] for s in api.services()}
            found = api.tasks(filters={"node": node_id} if node_id else None)
        tasks = [parse_task(doc, names) for doc in found]
        return sorted(tasks, key=lambda t: (t.service, t.slot or 0, t.desired_state != "running"))

    def set_node_availability(self, node_id: str, availability: str) -> SwarmNodeInfo:
        """Drain, pause or activate a node (Swarm moves a drained node's tasks away).
        The node's spec is written back with its current version; a concurrent change
        of the same node (409/version out of sequence) is retried once."""
        if availability not in AVAILABILITIES:
            raise EngineError(
                f"Unknown availability {availability!r}: use one of {', '.join(AVAILABILITIES)}.",
                retryable=False,
            )
        api = self._docker.api
        for attempt in (1, 2):
            with self._errors():
                doc = api.inspect_node(node_id)
            spec = dict(doc.get("Spec") or {})
            if spec.get("Availability") == availability:
                return parse_node(doc)
            spec["Availability"] = availability
            try:
                with self._errors():
                    api.update_node(node_id, doc["Version"]["Index"], spec)
                break
            except EngineError as exc:
                if attempt == 2 or "out of sequence" not in exc.message:
                    raise
        with self._errors():
            return parse_node(api.inspect_node(node_id))

    # services and overlay networks (the building blocks of stacks on a swarm) ----------
    #
    # Everything here is filtered by, or checked against, this installation's labels:
    # a service or network another Berth (or a person) made is never listed, updated or
    # removed.

    def ensure_overlay_network(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        attachable: bool = True,
        encrypted: bool = False,
        owner: Mapping[str, str] | None = None,
    ) -> str:
        """An overlay network with this name, created when missing; its id. One of that
        name not matching `owner` (default: the labels) is refused, never joined.

        `encrypted` is refused: this kernel cannot install the IPsec state, and the
        engine would accept the network and leave every task on it in Preparing.
        """
        if encrypted:
            raise EngineError(
                f"Network {name}: encrypted overlay networks are not available on this "
                "swarm (the nodes' kernel cannot install IPsec state: tasks would stay in "
                "Preparing). Use a plain overlay network.",
                retryable=False,
            )
        api = self._docker.api
        wanted = {**managed_labels(), **dict(labels or {})}
        with self._errors():
            found = _swarm_networks_named(api, name)
            if not found:
                try:
                    api.create_network(
                        name,
                        driver="overlay",
                        attachable=attachable,
                        check_duplicate=True,
                        labels=wanted,
                    )
                except docker.errors.APIError as exc:  # created meanwhile by someone else
                    if exc.status_code != 409:
                        raise
                found = _swarm_networks_named(api, name)
        for network in found:
            reason = foreign_owner(network.get("Labels"), owner or wanted)
            # Driver is "" for a moment after create, until the manager allocated it
            if reason is not None or network.get("Driver") not in ("overlay", ""):
                raise EngineError(
                    f"The network name {name} is taken on the swarm by a network Berth will "
                    f"not use: {reason or 'it is not an overlay network'}.",
                    retryable=False,
                    status=409,
                )
        if not found:
            raise EngineError(f"Network {name} vanished while it was created.", retryable=True)
        return str(sorted(found, key=lambda n: str(n.get("Created") or ""))[0]["Id"])

    def remove_overlay_network(self, name: str, owner: Mapping[str, str]) -> None:
        """Remove the overlay network if it is `owner`'s; gone already, or not ours:
        left alone. (Named apart from `remove_network`, which stays refused until stacks
        deploy here.)"""
        api = self._docker.api
        with self._errors():
            found = _swarm_networks_named(api, name)
        for network in found:
            if foreign_owner(network.get("Labels"), owner) is None:
                self._remove(lambda api, ident=network["Id"]: api.remove_network(ident))

    def list_overlay_networks(self, labels: Mapping[str, str | None] | None = None) -> list[str]:
        """Names of this installation's swarm-scoped networks matching `labels` (one call)."""
        api = self._docker.api
        with self._errors():
            found = api.networks(filters={"label": label_filters(labels), "scope": "swarm"})
        return sorted(str(n.get("Name")) for n in found)

    def list_overlay_network_infos(
        self, labels: Mapping[str, str | None] | None = None
    ) -> list[OverlayNetworkInfo]:
        """This installation's swarm-scoped networks matching `labels`, with their labels
        and creation times (one call; the orphan sweep reads whose they are)."""
        api = self._docker.api
        with self._errors():
            found = api.networks(filters={"label": label_filters(labels), "scope": "swarm"})
        return sorted(
            (
                OverlayNetworkInfo(
                    str(n.get("Id") or ""),
                    str(n.get("Name") or ""),
                    {str(k): str(v) for k, v in (n.get("Labels") or {}).items()},
                    parse_timestamp(n.get("Created")),
                )
                for n in found
            ),
            key=lambda n: n.name,
        )

    def create_service(self, request: SwarmServiceRequest) -> str:
        """Create the service (its tasks start as Swarm schedules them); its id. The
        registry credentials travel with the request so every node can pull."""
        body = self._owned_spec(request)
        api = self._docker.api
        with self._errors():
            response = api._post_json(
                api._url("/services/create"), data=body, headers=_auth_headers(request)
            )
            return str(api._result(response, json=True)["ID"])

    def update_service(self, service_id: str, request: SwarmServiceRequest) -> None:
        """Replace the service's spec (Swarm then rolls its tasks per update_config),
        written with the version just read; a concurrent change (update out of sequence)
        is retried once. A service not this installation's is refused."""
        body = self._owned_spec(request)
        api = self._docker.api
        for attempt in (1, 2):
            current = self._own_service(service_id)
            version = int(current["Version"]["Index"])
            try:
                with self._errors():
                    response = api._post_json(
                        api._url("/services/{0}/update", service_id),
                        data=body,
                        params={"version": version},
                        headers=_auth_headers(request),
                    )
                    api._raise_for_status(response)
                return
            except EngineError as exc:
                if attempt == 2 or "out of sequence" not in exc.message:
                    raise

    def refresh_registry_auth(self, service_id: str, auth: Mapping[str, str]) -> None:
        """Hand the nodes a fresh pull credential for the service, its spec unchanged
        (written back as read, with its version). Swarm keeps the credential given at
        create or update time and pulls with it whenever a task is placed on a node
        lacking the image; Berth's lasts minutes. A running task is not replaced by this
        (Swarm ignores the credential for tasks that already have their image); a task
        that failed to pull is, and its next attempt pulls with the new one."""
        header = registry_auth_header(auth)
        if not header:
            return
        api = self._docker.api
        for attempt in (1, 2):
            current = self._own_service(service_id)
            try:
                with self._errors():
                    response = api._post_json(
                        api._url("/services/{0}/update", service_id),
                        data=current["Spec"],
                        params={"version": int(current["Version"]["Index"])},
                        headers={"X-Registry-Auth": header},
                    )
                    api._raise_for_status(response)
                return
            except EngineError as exc:
                if attempt == 2 or "out of sequence" not in exc.message:
                    raise

    def remove_service(self, service_id: str) -> None:
        """Remove the service (Swarm stops its tasks); gone already is fine, another
        installation's is refused."""
        try:
            self._own_service(service_id)
        except EngineError as exc:
            if exc.not_found:
                return
            raise
        self._remove(lambda api: api.remove_service(service_id))

    def list_services(
        self, labels: Mapping[str, str | None] | None = None
    ) -> list[SwarmServiceInfo]:
        """This installation's services matching `labels`, with their running and
        desired task counts: one call, whatever the number of services."""
        api = self._docker.api
        with self._errors():
            found = api.services(filters={"label": label_filters(labels)}, status=True)
        return sorted((parse_service(doc) for doc in found), key=lambda s: s.name)

    def list_service_tasks(
        self,
        labels: Mapping[str, str | None] | None = None,
        service_ids: list[str] | None = None,
    ) -> list[SwarmTaskInfo]:
        """Tasks of this installation's services matching `labels`, or of the given
        services (still only this installation's): one call. A task names its service
        by id only (`service_id`; `service` holds its first 12 characters): join with
        `list_services` for names."""
        filters: dict[str, Any] = {"label": label_filters(labels)}
        if service_ids is not None:
            if not service_ids:
                return []
            filters["service"] = list(service_ids)
        api = self._docker.api
        with self._errors():
            found = api.tasks(filters=filters)
        tasks = [parse_task(doc, {}) for doc in found]
        return sorted(
            tasks, key=lambda t: (t.service_id, t.slot or 0, t.desired_state != "running")
        )

    def list_managed_tasks(self) -> list[ManagedTask]:
        """Every task of this installation's services, on every node, with its container
        and owner labels (one call). A task whose container spec does not carry this
        installation's label is left out."""
        api = self._docker.api
        with self._errors():
            found = api.tasks(filters={"label": label_filters()})
        tasks = [parse_managed_task(doc) for doc in found]
        return [t for t in tasks if t.labels.get(INSTALLATION_LABEL) == installation_id()]

    # secrets and configs: Swarm objects holding a file's bytes, immutable once made ---

    def ensure_file_object(
        self, kind: str, name: str, data: bytes, labels: Mapping[str, str], owner: Mapping[str, str]
    ) -> str:
        """The Swarm secret or config (`kind`) called `name`, created with `data` when
        missing; its id. Names carry a version, so an existing one holds the same data;
        one not `owner`'s is refused, never used. The data goes in the create call only:
        no listing, error or log of Berth's carries it."""
        api = self._docker.api
        wanted = {**managed_labels(), **dict(labels)}
        listing, create = _file_calls(api, kind)
        with self._errors():
            found = [o for o in listing(filters={"name": name}) if o["Spec"]["Name"] == name]
            if not found:
                try:
                    return str(create(name, data, labels=wanted)["ID"])
                except docker.errors.APIError as exc:  # made meanwhile by another pass
                    if exc.status_code != 409:
                        raise
                found = [o for o in listing(filters={"name": name}) if o["Spec"]["Name"] == name]
        for obj in found:
            reason = foreign_owner(obj["Spec"].get("Labels"), owner)
            if reason is not None:
                raise EngineError(
                    f"The {kind} name {name} is taken on the swarm by one Berth will not use: "
                    f"{reason}.",
                    retryable=False,
                    status=409,
                )
        return str(found[0]["ID"])

    def list_file_objects(
        self, kind: str, labels: Mapping[str, str | None] | None = None
    ) -> list[FileObjectInfo]:
        """This installation's secrets or configs matching `labels` (one call)."""
        listing, _ = _file_calls(self._docker.api, kind)
        with self._errors():
            found = listing(filters={"label": label_filters(labels)})
        return sorted(
            (
                FileObjectInfo(
                    str(o["ID"]),
                    str(o["Spec"]["Name"]),
                    o["Spec"].get("Labels") or {},
                    parse_timestamp(o.get("CreatedAt")),
                )
                for o in found
            ),
            key=lambda o: o.name,
        )

    def remove_file_object(self, kind: str, obj: FileObjectInfo) -> bool:
        """Remove a secret or config of this installation; False while a service still
        uses it (Swarm refuses; the next pass tries again). Gone already is fine."""
        if obj.labels.get(INSTALLATION_LABEL) != installation_id():
            raise EngineError(f"The {kind} {obj.name} is not Berth's to remove.", retryable=False)
        api = self._docker.api
        remove = api.remove_secret if kind == "secret" else api.remove_config
        try:
            self._remove(lambda api: remove(obj.object_id))
        except EngineError as exc:
            if "in use" in exc.message:
                return False
            raise
        return True

    def service_logs(
        self, service_id: str, *, tail: str = "100", follow: bool = False
    ) -> ServiceLogStream:
        """The merged log of a service's tasks on every node, through the manager's
        service logs endpoint (no I/O until read); a LogReader like a container's."""
        self._own_service(service_id)
        return ServiceLogStream(self, service_id, follow=follow, tail=tail)

    def _owned_spec(self, request: SwarmServiceRequest) -> dict[str, Any]:
        body = service_spec(request)
        if body["Labels"].get(INSTALLATION_LABEL) != installation_id():
            raise EngineError(
                f"Service {request.name}: its installation label is not this Berth's.",
                retryable=False,
            )
        return body

    def _own_service(self, service_id: str) -> dict[str, Any]:
        """The service's document, refused (as not found) unless it is this installation's."""
        api = self._docker.api
        with self._errors():
            doc = api.inspect_service(service_id)
        labels = (doc.get("Spec") or {}).get("Labels") or {}
        owner = {INSTALLATION_LABEL: installation_id()}
        reason = foreign_owner(labels, owner)
        if reason is not None:
            raise EngineError(
                f"Service {service_id} is not Berth's to change: {reason}.",
                retryable=False,
                status=404,
            )
        return doc

    # one task, addressed by its id as a container is on an engine ----------------------

    def logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        tail: str = "100",
        since: float | str | None = None,
        until: str | None = None,
        tty: bool | None = None,
    ) -> TaskLogStream:
        """The task's log through the manager (`GET /tasks/{id}/logs`), on any node; no
        I/O until read (then the task's service is checked to be this installation's)."""
        return TaskLogStream(
            self, container_id, follow=follow, tail=tail, since=since, until=until, tty=tty
        )

    def inspect_container(self, container_id: str) -> ContainerStatus:
        """The task's state as a container's (`task_status`), on any node."""
        return task_status(self._own_task(container_id))

    def inspect_container_raw(self, container_id: str) -> dict[str, Any]:
        engine, container = self.task_engine(container_id, "inspect")
        try:
            return DockerEngine.inspect_container_raw(engine, container)
        finally:
            if engine is not self:
                engine.close()

    def stats(self, container_id: str) -> StatsStream:
        return TaskStatsStream(self, container_id)

    def exec_shell(
        self, container_id: str, shell: str, marker: str, cols: int, rows: int
    ) -> ShellSession:
        return TaskShellSession(self, container_id, shell, marker, cols, rows)

    def available_shells(self, container_id: str, candidates: Iterable[str]) -> list[str]:
        engine, container = self.task_engine(container_id, "shell")
        try:
            return DockerEngine.available_shells(engine, container, candidates)
        finally:
            if engine is not self:
                engine.close()

    def task_container(self, task_id: str, what: str) -> str:
        """The id of the task's container (see `task_engine`), its engine closed again."""
        engine, container = self.task_engine(task_id, what)
        if engine is not self:
            engine.close()
        return container

    def task_engine(self, task_id: str, what: str) -> tuple[DockerEngine, str]:
        """The engine running the task's container, and that container's id, for `what`
        (a key of NODE_ENGINE_USES): this driver itself for a task on the endpoint's own
        node; else a new engine for the task's node (the caller closes it), once it
        proved to be that node and its container the task's. Refused (non-retryable,
        409) for a node without an engine endpoint or with one reaching another engine
        or container; not found (404) for a task without a container (yet)."""
        doc = self._own_task(task_id)
        node_id = str(doc.get("NodeID") or "")
        if node_id == self._endpoint_node():
            return self, _container_of(doc, task_id)
        node = self.node_engine(node_id)
        if node is None:
            raise EngineError(
                node_engine_needed(what, self._node_name(node_id)), retryable=False, status=409
            )
        container = _container_of(doc, task_id)
        engine = open_node_engine(node, timeout=self.timeout)
        try:
            _check_task_container(engine, node, doc, container, what)
        except BaseException:
            engine.close()
            raise
        return engine, container

    def node_engine(self, node_id: str) -> NodeEngine | None:
        """The engine endpoint given for node `node_id`, if any (read once per driver)."""
        if self._node_engines is None:
            source = self._node_engines_source
            found = source() if source is not None else ()
            self._node_engines = {n.node_id: n for n in found if n.endpoint}
        return self._node_engines.get(node_id)

    def _node_name(self, node_id: str) -> str:
        """The node's hostname as the manager knows it (its id when it does not answer)."""
        if not node_id:
            return "(none yet)"
        api = self._docker.api
        try:
            with self._errors():
                return parse_node(api.inspect_node(node_id)).hostname or node_id[:12]
        except EngineError:
            return node_id[:12]

    def _endpoint_node(self) -> str:
        """The node id of the engine this endpoint reaches (asked once per driver)."""
        found = getattr(self, "_node_id", None)
        if found is None:
            found = self._node_id = self.swarm().node_id
        return found

    def _own_task(self, task_id: str) -> dict[str, Any]:
        """The task's document, refused (as not found) unless its service is this
        installation's."""
        api = self._docker.api
        with self._errors():
            doc = api.inspect_task(task_id)
        self._own_service(str(doc.get("ServiceID") or ""))
        return dict(doc)

    # stacks are not deployable here yet -------------------------------------------------

    def _not_deployable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise EngineError(NOT_DEPLOYABLE.format(endpoint=self.endpoint), retryable=False)

    ensure_network = remove_network = ensure_volume = remove_volume = _not_deployable
    create_container = start = stop = restart = remove = _not_deployable
    pull = push = tag_image = remove_image = _not_deployable
    run_check = _not_deployable


class ServiceLogStream(LogStream):
    """`docker service logs`: the tasks' lines from every node, read through the manager
    (non-TTY, so multiplexed like a container's log)."""

    path = "/services/{0}/logs"

    def _check(self) -> None:
        """Refuse what is not this installation's (the service was checked when made)."""

    def _demultiplexer(self) -> EngineMessageDemultiplexer:
        return EngineMessageDemultiplexer()

    def _open(self) -> tuple[Any, bool]:
        self._check()
        api = self.engine._docker.api
        with self.engine._errors():
            response = api._get(
                api._url(self.path, self.container_id), params=self._params(), stream=True
            )
            api._raise_for_status(response)
            _wait_forever(api, response)
        return response, False


class TaskLogStream(ServiceLogStream):
    """`docker service logs <task>`: one task's lines, from whatever node runs it, read
    through the manager."""

    path = "/tasks/{0}/logs"

    def _check(self) -> None:
        self.engine._own_task(self.container_id)


class TaskStatsStream(StatsStream):
    """The stats of a task's container, from the engine of its node (resolved, and that
    engine checked, when the samples are first read). Its `engine` is then the node's
    (the caller closes it); closing the stream also closes the cluster's."""

    _cluster: DockerEngine | None = None

    def samples(self) -> Iterator[dict[str, Any]]:
        engine, self.container_id = self.engine.task_engine(self.container_id, "stats")
        if engine is not self.engine:
            self._cluster, self.engine = self.engine, engine
        yield from super().samples()

    def close(self) -> None:
        super().close()
        if self._cluster is not None:
            self._cluster.close()


class TaskShellSession(ShellSession):
    """A shell in a task's container, through the engine of its node (resolved, and that
    engine checked, when the session starts, in the caller's worker thread). Its
    `engine` is then the node's; closing the session also closes the cluster's."""

    _cluster: DockerEngine | None = None

    def start(self) -> None:
        engine, self.container_id = self.engine.task_engine(self.container_id, "shell")
        if engine is not self.engine:
            self._cluster, self.engine = self.engine, engine
        super().start()

    def close(self) -> None:
        super().close()
        if self._cluster is not None:
            self._cluster.close()


def _container_of(task: Mapping[str, Any], task_id: str) -> str:
    container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
    if not container:
        raise EngineError(
            f"Task {task_id[:12]} has no container (yet): it is not running.",
            retryable=False,
            status=404,
        )
    return str(container)


def _check_task_container(
    engine: DockerEngine, node: NodeEngine, task: Mapping[str, Any], container: str, what: str
) -> None:
    """Refuse (409) unless `engine` is the Swarm node `node` and `container` there is the
    task's: an endpoint pointing at another engine must never open its containers."""
    found = engine_identity_problem(engine._raw_info(), node.node_id)
    if found:
        uses = NODE_ENGINE_USES[what]
        raise EngineError(
            NODE_ENGINE_MISMATCH.format(uses=uses, node=node.name, found=found),
            retryable=False,
            status=409,
        )
    problem = task_container_problem(task, engine.inspect_container_raw(container))
    if problem:
        uses = NODE_ENGINE_USES[what]
        raise EngineError(
            NOT_THE_TASKS_CONTAINER.format(uses=uses, node=node.name, problem=problem),
            retryable=False,
            status=409,
        )


class NodeEngineClient(DockerEngine):
    """One node's own engine. Its errors name the node, not the endpoint: they reach
    tenants (a shell or stats socket's closing sentence), who never see endpoints."""

    def __init__(self, node: NodeEngine, *, timeout: float, tls: TLSFiles | None) -> None:
        super().__init__(node.endpoint, timeout=timeout, tls=tls)
        self.node = node

    def __repr__(self) -> str:
        return f"<NodeEngineClient {self.node.name} {self.endpoint}>"

    def _errors(self):
        return engine_errors(f"node {self.node.name}", self.timeout)


def open_node_engine(node: NodeEngine, *, timeout: float | None = None) -> NodeEngineClient:
    """A client of the node's own engine (no I/O yet). TLS material goes to the node's
    folder (tls/node-<row id>/), or to a temporary one for a node not saved yet."""
    tls = None
    if node.endpoint.startswith("tcp://") and node.tls_client_cert:
        tls = write_tls_files(
            node.row_id, node.tls_ca_cert, node.tls_client_cert, node.tls_client_key,
            prefix="node-",
        )  # fmt: skip
    return NodeEngineClient(node, timeout=timeout or settings.BERTH_ENGINE_TIMEOUT, tls=tls)


def node_engine_identity(node: NodeEngine) -> str:
    """Why the engine at `node.endpoint` is not node `node.node_id` ("" when it is); an
    EngineError when it does not answer. One call (plus the version probe)."""
    with open_node_engine(node) as engine:
        return engine_identity_problem(engine._raw_info(), node.node_id)


def open_checked_node_engine(node: NodeEngine, *, timeout: float | None = None) -> NodeEngineClient:
    """A client of the node's own engine once it proved to be that node (its `docker
    info` Swarm NodeID: one call); a non-retryable EngineError naming what it reaches
    otherwise, or the engine's error when it does not answer."""
    engine = open_node_engine(node, timeout=timeout)
    try:
        found = engine_identity_problem(engine._raw_info(), node.node_id)
    except BaseException:
        engine.close()
        raise
    if found:
        engine.close()
        raise EngineError(f"its engine endpoint reaches {found}", retryable=False, status=409)
    return engine


def node_task_containers(
    listed: Iterable[ManagedContainer], tasks: Iterable[ManagedTask], node_id: str
) -> tuple[dict[str, ManagedContainer], list[str]]:
    """Which containers listed on node `node_id`'s engine are tasks of this installation
    there: task id -> container, each one carrying that task's id, node and owner labels
    (`task_labels_problem`), and why the others were refused. A container that names no
    task of the manager's listing (a task already forgotten) is skipped silently."""
    by_id = {t.task_id: t for t in tasks}
    found: dict[str, ManagedContainer] = {}
    refused: list[str] = []
    for container in listed:
        task = by_id.get(container.labels.get(TASK_ID_LABEL, ""))
        if task is None:
            continue
        problem = task_labels_problem(task.task_id, task.node_id, task.labels, container.labels)
        if problem or task.node_id != node_id:
            refused.append(f"{container.id[:12]}: {problem or 'a container of another node'}")
            continue
        found[task.task_id] = container
    return found, refused


def node_engine_of(node: Any) -> NodeEngine:
    """The NodeEngine of a SwarmNode row (anything with its `engine_*` fields)."""
    return NodeEngine(
        node_id=node.node_id,
        hostname=node.hostname,
        endpoint=node.engine_endpoint,
        tls_ca_cert=node.engine_tls_ca_cert,
        tls_client_cert=node.engine_tls_client_cert,
        tls_client_key=node.engine_tls_client_key,
        row_id=node.pk,
    )


def node_engines_of(host: Any) -> list[NodeEngine]:
    """The engine endpoints of a cluster host's nodes: `host.engine_nodes` when the
    caller prefetched them (the sockets do, so no query runs in their async context;
    apps.hosts.models.node_engines_prefetch), else read from its `swarm_nodes`."""
    nodes = getattr(host, "engine_nodes", None)
    if nodes is None:
        related = getattr(host, "swarm_nodes", None)
        nodes = related.exclude(engine_endpoint="") if related is not None else ()
    return [node_engine_of(n) for n in nodes if n.engine_endpoint]


def _swarm_networks_named(api: Any, name: str) -> list[dict[str, Any]]:
    """Swarm-scoped networks with exactly this name (the engine's filter matches substrings)."""
    found = api.networks(names=[name], filters={"scope": "swarm"})
    return [n for n in found if n.get("Name") == name]


def _file_calls(api: Any, kind: str) -> tuple[Any, Any]:
    """The list and create calls of secrets or of configs."""
    if kind == "secret":
        return api.secrets, api.create_secret
    if kind == "config":
        return api.configs, api.create_config
    raise EngineError(f"Unknown kind of file object {kind!r}.", retryable=False)


def _auth_headers(request: SwarmServiceRequest) -> dict[str, str]:
    header = registry_auth_header(request.registry_auth)
    return {"X-Registry-Auth": header} if header else {}


def swarm_cluster(host: Any) -> SwarmCluster:
    """The driver for a host of kind "swarm" (a manager's endpoint and TLS, and its
    nodes' engine endpoints, read when a task elsewhere first needs one); no I/O yet."""
    tls = None
    if host.endpoint.startswith("tcp://") and host.tls_client_cert:
        tls = write_tls_files(host.pk, host.tls_ca_cert, host.tls_client_cert, host.tls_client_key)
    return SwarmCluster(
        host.endpoint,
        timeout=settings.BERTH_ENGINE_TIMEOUT,
        tls=tls,
        tls_verify=getattr(host, "tls_verify", True),
        node_engines=lambda: node_engines_of(host),
    )
