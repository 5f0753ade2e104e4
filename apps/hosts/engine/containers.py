"""What the driver sends to create a container, and what it reads back (pure: no I/O).

`ContainerRequest` is everything Berth decides about a container; `container_config`
turns it into the Engine API body of `POST /containers/create`, and `checked_config`
runs the tenant policy and the hardening check on that exact body's HostConfig, so no
path (create, redeploy, scale, upgrade, rollback) can send what the policy refuses.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.compose.host_policy import check_hardening, check_host_config
from apps.compose.images import is_image_id
from apps.hosts.engine.errors import EngineError

NO_NEW_PRIVILEGES = "no-new-privileges:true"
_NS = 1_000_000_000


@dataclass(frozen=True)
class PortBinding:
    """A published port: `host_port` None lets the engine pick a free one."""

    container_port: int
    host_ip: str
    host_port: int | None = None
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    """A named volume (`source` = engine volume name, None for anonymous), a tmpfs, or a
    bind mount (only ever passes the policy where an admin allowed `bind_mounts`)."""

    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    nocopy: bool = False
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True)
class HealthcheckRequest:
    """Docker's form: test ("CMD", ...)/("CMD-SHELL", cmd)/("NONE",); durations in seconds."""

    test: tuple[str, ...] | None = None
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    retries: int | None = None


@dataclass(frozen=True)
class HostPolicy:
    """What this container may use: the environment's exceptions and interfaces, and the
    stack's own volumes (checked again on the final HostConfig)."""

    allowed_exceptions: frozenset[str] = frozenset()
    allowed_interfaces: frozenset[str] = frozenset({"127.0.0.1"})
    allowed_volumes: frozenset[str] | None = None
    allowed_containers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContainerFile:
    """A file written into a created container before it starts (a secret or config
    from the environment's store): absolute path, owner and mode. `data` is in no repr."""

    path: str
    data: bytes = field(repr=False)
    uid: int = 0
    gid: int = 0
    mode: int = 0o400


def files_archive(files: tuple[ContainerFile, ...]) -> bytes:
    """A tar of the files, rooted at "/" (the engine makes missing parent folders 0755
    and leaves existing ones as they are: the archive holds no folder entry)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in files:
            info = tarfile.TarInfo(item.path.lstrip("/"))
            info.size, info.mode = len(item.data), item.mode
            info.uid, info.gid, info.mtime = item.uid, item.gid, int(time.time())
            tar.addfile(info, io.BytesIO(item.data))
    return buffer.getvalue()


@dataclass(frozen=True)
class ContainerRequest:
    name: str
    image: str
    network: str
    memory: int
    pids_limit: int
    log_max_size: str = "10m"
    log_max_files: int = 3
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # More networks joined right after create (Engine API 1.41 takes one at create time),
    # each with its own aliases.
    extra_networks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    exposed: tuple[tuple[int, str], ...] = ()
    healthcheck: HealthcheckRequest | None = None
    restart_policy: str = "no"
    restart_retries: int | None = None
    user: str | None = None
    working_dir: str | None = None
    stop_timeout: int | None = None
    nano_cpus: int | None = None
    memory_reservation: int | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    # Namespaces, devices and kernel settings: each one reaches the engine only where the
    # policy allows it (an admin's exception, or a sibling service's container).
    network_mode: str | None = None  # None joins `network`; "host", "none", "container:x"
    pid_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    userns_mode: str | None = None
    devices: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str | None = None
    volumes_from: tuple[str, ...] = ()
    policy: HostPolicy = field(default_factory=HostPolicy)
    # Written into the container between create and start (never in its config).
    files: tuple[ContainerFile, ...] = field(default=(), repr=False, compare=False)


def host_config(request: ContainerRequest) -> dict[str, Any]:
    """The Engine API HostConfig for a request, hardening included."""
    hc: dict[str, Any] = {
        "NetworkMode": request.network_mode or request.network,
        "Memory": int(request.memory),
        "PidsLimit": int(request.pids_limit),
        "LogConfig": {
            "Type": "json-file",
            "Config": {"max-size": request.log_max_size, "max-file": str(request.log_max_files)},
        },
        "SecurityOpt": [NO_NEW_PRIVILEGES, *request.security_opt],
        "RestartPolicy": _restart(request),
        "Mounts": [_mount(m) for m in request.mounts],
        "PortBindings": _port_bindings(request.ports),
    }
    optional = {
        "NanoCpus": request.nano_cpus,
        "MemoryReservation": request.memory_reservation,
        "Privileged": request.privileged or None,
        "CapAdd": list(request.cap_add) or None,
        "CapDrop": list(request.cap_drop) or None,
        "PidMode": request.pid_mode or None,
        "IpcMode": request.ipc_mode or None,
        "UTSMode": request.uts_mode or None,
        "UsernsMode": request.userns_mode or None,
        "Devices": [device_mapping(d) for d in request.devices] or None,
        "DeviceCgroupRules": list(request.device_cgroup_rules) or None,
        "Sysctls": {str(k): str(v) for k, v in request.sysctls.items()} or None,
        "CgroupParent": request.cgroup_parent or None,
        "VolumesFrom": list(request.volumes_from) or None,
    }
    hc.update({k: v for k, v in optional.items() if v is not None})
    return hc


_PERMISSIONS = re.compile(r"^[rwm]{1,3}$")


def device_mapping(device: str) -> dict[str, str]:
    """Compose's "/dev/src[:/dev/dst][:rwm]" as the Engine API's device mapping (the
    docker CLI's reading: a second part made of r, w, m letters is the permissions)."""
    parts = str(device).split(":")
    if len(parts) > 3 or not parts[0]:
        raise EngineError(
            f"Invalid device {device!r}: use /dev/src[:/dev/dst][:rwm].", retryable=False
        )
    source, target, permissions = parts[0], parts[0], "rwm"
    if len(parts) == 3:
        target, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if _PERMISSIONS.match(parts[1]):
            permissions = parts[1]
        else:
            target = parts[1]
    if not _PERMISSIONS.match(permissions):
        raise EngineError(
            f"Invalid device permissions in {device!r}: use r, w and m.", retryable=False
        )
    return {"PathOnHost": source, "PathInContainer": target, "CgroupPermissions": permissions}


def container_config(request: ContainerRequest) -> dict[str, Any]:
    """The whole `POST /containers/create` body (Engine API 1.41)."""
    config: dict[str, Any] = {
        "Image": request.image,
        "Labels": dict(request.labels),
        "Env": [k if v is None else f"{k}={v}" for k, v in request.env.items()],
        "ExposedPorts": _exposed(request),
        "HostConfig": host_config(request),
    }
    if not request.network_mode:  # another namespace mode joins no network of its own
        config["NetworkingConfig"] = {
            "EndpointsConfig": {request.network: {"Aliases": list(request.aliases)}}
        }
    optional = {
        "Cmd": list(request.command) if request.command is not None else None,
        "Entrypoint": list(request.entrypoint) if request.entrypoint is not None else None,
        "Healthcheck": _healthcheck(request.healthcheck),
        "User": request.user,
        "WorkingDir": request.working_dir,
        "StopTimeout": request.stop_timeout,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    return config


def checked_config(request: ContainerRequest) -> dict[str, Any]:
    """The create body, or EngineError (not retryable) naming every broken rule.

    Nothing the request asks for is dropped on the way: a namespace mode, a device or a
    sysctl is in the HostConfig and judged here with the environment's exceptions.
    """
    config = container_config(request)
    if is_image_id(request.image):  # the last line: the compose reader and the pull refuse it too
        raise EngineError(
            f"Refused to create {request.name}: {request.image!r} is an image id; name an "
            "image by repository so the tenant's right to pull it can be checked.",
            retryable=False,
        )
    problems = check_host_config(
        config["HostConfig"],
        name=request.name,
        allowed_exceptions=request.policy.allowed_exceptions,
        allowed_interfaces=request.policy.allowed_interfaces,
        allowed_networks={request.network, *(name for name, _ in request.extra_networks)},
        allowed_volumes=request.policy.allowed_volumes,
        allowed_containers=request.policy.allowed_containers,
    ) + check_hardening(config["HostConfig"], name=request.name)
    if problems:
        text = "; ".join(p.message for p in problems)
        raise EngineError(f"Refused to create {request.name}: {text}", retryable=False)
    return config


def _restart(request: ContainerRequest) -> dict[str, Any]:
    policy: dict[str, Any] = {"Name": request.restart_policy or "no"}
    if request.restart_policy == "on-failure" and request.restart_retries is not None:
        policy["MaximumRetryCount"] = int(request.restart_retries)
    return policy


def _mount(mount: Mount) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": mount.type, "Target": mount.target}
    if mount.read_only:
        body["ReadOnly"] = True
    if mount.source and mount.type in ("volume", "bind"):
        body["Source"] = mount.source
    if mount.type == "volume":
        if mount.nocopy:
            body["VolumeOptions"] = {"NoCopy": True}
    elif mount.type == "tmpfs":
        options = {"SizeBytes": mount.tmpfs_size, "Mode": mount.tmpfs_mode}
        options = {k: v for k, v in options.items() if v is not None}
        if options:
            body["TmpfsOptions"] = options
    return body


def _port_bindings(ports: Iterable[PortBinding]) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        key = f"{port.container_port}/{port.protocol}"
        host_port = "" if port.host_port is None else str(port.host_port)
        bindings.setdefault(key, []).append({"HostIp": port.host_ip, "HostPort": host_port})
    return bindings


def _exposed(request: ContainerRequest) -> dict[str, dict]:
    keys = [f"{p.container_port}/{p.protocol}" for p in request.ports]
    keys += [f"{port}/{proto}" for port, proto in request.exposed]
    return {key: {} for key in keys}


def _healthcheck(check: HealthcheckRequest | None) -> dict[str, Any] | None:
    if check is None:
        return None
    body: dict[str, Any] = {}
    if check.test is not None:
        body["Test"] = list(check.test)
    for key, seconds in (
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
    ):
        if seconds is not None:
            body[key] = int(seconds * _NS)
    if check.retries is not None:
        body["Retries"] = int(check.retries)
    return body or None


@dataclass(frozen=True)
class ContainerStatus:
    """One container as `inspect` shows it, in Berth's words."""

    id: str
    name: str
    state: str
    health: str
    health_output: str
    exit_code: int | None
    restart_count: int
    started_at: str
    ports: list[dict[str, Any]]
    labels: dict[str, str]
    error: str = ""


def container_status(attrs: Mapping[str, Any]) -> ContainerStatus:
    state = attrs.get("State") or {}
    health = state.get("Health") or {}
    log = health.get("Log") or []
    network = attrs.get("NetworkSettings") or {}
    ports = []
    for key, entries in (network.get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for entry in entries or ():
            ports.append(
                {
                    "container_port": int(port),
                    "protocol": proto or "tcp",
                    "host_ip": entry.get("HostIp", ""),
                    "host_port": int(entry.get("HostPort") or 0),
                }
            )
    return ContainerStatus(
        id=attrs.get("Id", ""),
        name=str(attrs.get("Name", "")).lstrip("/"),
        state=state.get("Status", ""),
        health=health.get("Status", ""),
        health_output=str(log[-1].get("Output", "")).strip()[-500:] if log else "",
        exit_code=state.get("ExitCode"),
        restart_count=int(attrs.get("RestartCount") or 0),
        started_at=state.get("StartedAt", ""),
        ports=ports,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        error=state.get("Error", ""),
    )


_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT = re.compile(r"^Exited \((-?\d+)\)")


def health_from_status(status: str) -> str:
    """ "Up 2 minutes (healthy)" -> "healthy"; "" when the container has no health check."""
    found = _HEALTH.search(status or "")
    if not found:
        return ""
    return "starting" if found.group(1) == "health: starting" else found.group(1)


def exit_code_from_status(status: str) -> int | None:
    found = _EXIT.search(status or "")
    return int(found.group(1)) if found else None
