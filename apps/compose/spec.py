"""Typed result of parsing a compose file: what the driver and the policy work from.

Frozen dataclasses so a parsed project (and the Revision built from it) cannot be changed
by accident; derive a changed copy with ``dataclasses.replace``. Durations are seconds
(float), sizes are bytes (int), and absent values are None rather than guessed defaults,
so the driver decides defaults in one place. ``dataclasses.asdict`` gives plain JSON-able
data (tuples become lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PortSpec:
    """One published port; ranges are expanded, so "8000-8001:80-81" gives two of these.

    ``published`` None means "any free host port"; ``host_ip`` None means "all interfaces"
    until ``policy.normalize_ports`` fills in the environment's interface.
    """

    target: int
    published: int | None = None
    host_ip: str | None = None
    protocol: str = "tcp"
    mode: str = "ingress"


@dataclass(frozen=True)
class ExposedPort:
    """A port reachable by other services only (``expose``), never published on the host."""

    port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class VolumeMount:
    """A service mount. ``type`` is "volume" (``source`` = a top-level volume name, or None
    for an anonymous volume), "bind" (``source`` = a host path) or "tmpfs" (no source)."""

    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    nocopy: bool = False
    propagation: str | None = None
    selinux: str | None = None
    create_host_path: bool | None = None
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True)
class ServiceNetwork:
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dependency:
    """``depends_on`` entry; ``condition`` is service_started, service_healthy or
    service_completed_successfully."""

    condition: str = "service_started"
    restart: bool = False
    required: bool = True


@dataclass(frozen=True)
class Healthcheck:
    """``test`` is normalized to the Docker form: ("CMD", ...), ("CMD-SHELL", cmd) or
    ("NONE",); ``disable: true`` becomes ("NONE",). ``test`` None keeps the image's own."""

    test: tuple[str, ...] | None = None
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None

    @property
    def disabled(self) -> bool:
        return self.test == ("NONE",)


@dataclass(frozen=True)
class RestartPolicy:
    """``name`` is no, always, on-failure or unless-stopped; retries only for on-failure."""

    name: str
    max_retries: int | None = None


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None


@dataclass(frozen=True)
class UpdateConfig:
    parallelism: int | None = None
    delay: float | None = None
    order: str | None = None
    failure_action: str | None = None
    monitor: float | None = None
    max_failure_ratio: float | None = None


@dataclass(frozen=True)
class DeploySpec:
    replicas: int | None = None
    limits: Resources = field(default_factory=Resources)
    reservations: Resources = field(default_factory=Resources)
    update_config: UpdateConfig | None = None
    placement_constraints: tuple[str, ...] = ()
    # spread preferences ("node.labels.zone"), and at most this many tasks on one node
    placement_preferences: tuple[str, ...] = ()
    max_replicas_per_node: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FileReference:
    """A service's use of a top-level secret or config (apps.compose.files): `source`
    names the top-level entry, `target` is the file's absolute path in the container;
    uid, gid and mode None mean the defaults (root, and files.DEFAULT_MODES)."""

    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


@dataclass(frozen=True)
class StoreReference:
    """A top-level secret or config: `name` is the entry of the environment's store
    (Berth's encrypted secrets and configs) it stands for."""

    key: str
    name: str


@dataclass(frozen=True)
class ServiceSpec:
    """One service. Field names are the Compose keys; the security-relevant keys are kept
    exactly as written so that the policy can judge them (and admins allow exceptions)."""

    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()
    expose: tuple[ExposedPort, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    networks: dict[str, ServiceNetwork] = field(default_factory=dict)
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: RestartPolicy | None = None
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    stop_grace_period: float | None = None
    cpus: float | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    deploy: DeploySpec = field(default_factory=DeploySpec)
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    network_mode: str | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns_mode: str | None = None
    volumes_from: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str | None = None
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        """How many containers to run: ``deploy.replicas``, 1 when not given."""
        return 1 if self.deploy.replicas is None else self.deploy.replicas

    def service_references(self) -> set[str]:
        """Services this one needs started first: depends_on plus ``service:x`` modes."""
        refs = set(self.depends_on)
        for mode in (self.network_mode, self.pid, self.ipc):
            if mode and mode.startswith("service:"):
                refs.add(mode.partition(":")[2])
        return refs


@dataclass(frozen=True)
class VolumeSpec:
    """A top-level volume. ``name`` is an explicit engine-side name (reaches outside the
    stack, so the policy treats it like ``external``)."""

    key: str
    external: bool = False
    name: str | None = None
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    key: str
    external: bool = False
    name: str | None = None
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False


@dataclass(frozen=True)
class ComposeProject:
    name: str | None
    services: dict[str, ServiceSpec]
    volumes: dict[str, VolumeSpec] = field(default_factory=dict)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, StoreReference] = field(default_factory=dict)
    configs: dict[str, StoreReference] = field(default_factory=dict)
