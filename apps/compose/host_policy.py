"""The policy again, on the Docker API ``HostConfig`` the driver is about to send.

A second line of defence: whatever path built the request (create, redeploy, scale,
upgrade, rollback, a bug in the translation from ``ServiceSpec``), nothing reaches the
engine that the tenant policy would refuse. Keys follow the Engine API
(``POST /containers/create``, ``HostConfig``). Unexpected shapes count as violations
rather than being skipped, because this check must fail closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from apps.compose.errors import Problem
from apps.compose.rules import (
    Violation,
    check_exceptions,
    host_path_violation,
    is_safe_security_opt,
    to_problem,
)

_FLAGS = (  # key, rule, message when set to anything truthy
    ("Privileged", "privileged", "privileged mode is not allowed"),
    ("CapAdd", "cap_add", "adding capabilities is not allowed"),
    ("Devices", "devices", "host devices are not allowed"),
    ("DeviceRequests", "devices", "device requests (GPUs) are not allowed"),
    ("DeviceCgroupRules", "device_cgroup_rules", "device cgroup rules are not allowed"),
    ("VolumesFrom", "volumes_from", "mounting volumes of other containers is not allowed"),
    ("Sysctls", "sysctls", "setting kernel parameters is not allowed"),
    ("CgroupParent", "cgroup_parent", "a custom cgroup parent is not allowed"),
    ("Cgroup", "cgroup_parent", "joining another container's cgroup is not allowed"),
    ("Links", "network_mode", "links to other containers are not allowed"),
    ("PublishAllPorts", "port_interfaces", "publishing all ports on all interfaces is not allowed"),
)
_UNMASKING = ("MaskedPaths", "ReadonlyPaths")


def check_host_config(
    host_config: dict[str, Any],
    *,
    name: str = "container",
    allowed_exceptions: Iterable[str] = frozenset(),
    allowed_interfaces: Iterable[str] = frozenset({"127.0.0.1"}),
    allowed_networks: Iterable[str] = frozenset(),
    allowed_containers: Iterable[str] = frozenset(),
    allowed_volumes: Iterable[str] | None = None,
) -> list[Problem]:
    """Violations in a HostConfig, minus allowed exceptions.

    ``allowed_networks``: the environment's network(s) the container may join (the shared
    default bridge is refused otherwise). ``allowed_containers``: names/ids of the same
    stack's containers, for ``container:`` namespace modes the driver itself uses.
    ``allowed_volumes``: the stack's volume names; None skips that check.
    """
    if not isinstance(host_config, dict):
        raise TypeError("host_config must be the HostConfig mapping")
    allowed = check_exceptions(allowed_exceptions)
    context = _Context(
        interfaces=frozenset(str(ipaddress.ip_address(a)) for a in allowed_interfaces),
        networks=frozenset(allowed_networks),
        containers=frozenset(f"container:{c}" for c in allowed_containers),
        volumes=None if allowed_volumes is None else frozenset(allowed_volumes),
    )
    return [
        to_problem("container", name, "HostConfig.", violation)
        for violation in _violations(host_config, context)
        if violation.rule not in allowed
    ]


def check_hardening(host_config: dict[str, Any], *, name: str = "container") -> list[Problem]:
    """What Berth adds to every container: no-new-privileges, memory, process and log
    limits. Not an exception admins can grant: a missing one is a driver bug."""
    hc = host_config if isinstance(host_config, dict) else {}
    missing = []
    if not any(is_safe_security_opt(str(opt)) for opt in _items(hc.get("SecurityOpt"))):
        missing.append(("SecurityOpt", "no-new-privileges is missing"))
    if not _positive(hc.get("Memory")):
        missing.append(("Memory", "a memory limit is missing"))
    if not _positive(hc.get("PidsLimit")):
        missing.append(("PidsLimit", "a process-count limit is missing"))
    if not _bounded_logs(hc.get("LogConfig")):
        missing.append(("LogConfig", "the log size is not bounded (max-size)"))
    return [
        to_problem("container", name, "HostConfig.", Violation(k, "hardening", m))
        for k, m in missing
    ]


@dataclass(frozen=True)
class _Context:
    """What this container may legitimately refer to, normalized once."""

    interfaces: frozenset[str]
    networks: frozenset[str]
    containers: frozenset[str]
    volumes: frozenset[str] | None


def _violations(hc: dict[str, Any], context: _Context) -> Iterator[Violation]:
    for key, rule, message in _FLAGS:
        if hc.get(key):
            yield Violation(key, rule, message)
    yield from _namespaces(hc, context)
    yield from _binds(hc.get("Binds"), context)
    yield from _mounts(hc.get("Mounts"), context)
    yield from _security(hc)
    yield from _port_bindings(hc.get("PortBindings"), context)


def _namespaces(hc: dict[str, Any], context: _Context) -> Iterator[Violation]:
    network = _mode(hc.get("NetworkMode"))
    if network != "none" and network not in context.networks | context.containers:
        shown = network or "default"
        yield Violation("NetworkMode", "network_mode", f"network mode {shown!r} is not allowed")
    modes = (
        ("PidMode", "pid", (None, "")),
        ("IpcMode", "ipc", (None, "", "private", "shareable", "none")),
        ("UTSMode", "uts", (None, "")),
        ("UsernsMode", "userns_mode", (None, "")),
        ("CgroupnsMode", "cgroupns", (None, "", "private")),
    )
    for key, rule, safe in modes:
        value = _mode(hc.get(key))
        if value not in safe and value not in context.containers:
            yield Violation(key, rule, f"{key} {value!r} is not allowed")


def _mode(value: Any) -> str | None:
    """A namespace mode as text; odd types become their repr, which matches nothing allowed
    (and cannot crash a set lookup)."""
    return value if value is None or isinstance(value, str) else repr(value)


def _binds(binds: Any, context: _Context) -> Iterator[Violation]:
    for index, bind in enumerate(_items(binds)):
        source = str(bind).split(":", 1)[0]
        key = f"Binds[{index}]"
        if source.startswith("/") or not source:
            yield host_path_violation(key, source)
        elif context.volumes is not None and source not in context.volumes:
            yield Violation(key, "external_volumes", f"volume {source!r} is not the stack's")


def _mounts(mounts: Any, context: _Context) -> Iterator[Violation]:
    for index, mount in enumerate(_items(mounts)):
        yield from _mount(f"Mounts[{index}]", mount, context)


def _mount(key: str, mount: Any, context: _Context) -> Iterator[Violation]:
    """One ``Mounts`` entry: tmpfs is fine, bind is a host path, a volume must be the
    stack's own and without driver options; anything else is refused."""
    if not isinstance(mount, dict):
        yield Violation(key, "bind_mounts", "malformed mount")
        return
    kind, source = mount.get("Type"), str(mount.get("Source") or "")
    if kind == "bind":
        yield host_path_violation(key, source)
    elif kind != "volume" and kind != "tmpfs":
        yield Violation(key, "bind_mounts", f"mount type {kind!r} is not allowed")
    elif kind == "volume":
        if context.volumes is not None and source and source not in context.volumes:
            yield Violation(key, "external_volumes", f"volume {source!r} is not the stack's")
        options = mount.get("VolumeOptions")
        if options and (not isinstance(options, dict) or options.get("DriverConfig")):
            yield Violation(key, "volume_driver", "volume driver options are not allowed")


def _security(hc: dict[str, Any]) -> Iterator[Violation]:
    unsafe = [
        str(opt) for opt in _items(hc.get("SecurityOpt")) if not is_safe_security_opt(str(opt))
    ]
    if unsafe:
        yield Violation(
            "SecurityOpt", "security_opt", f"security options ({', '.join(unsafe)}) are not allowed"
        )
    runtime = hc.get("Runtime")
    if runtime not in (None, "", "runc"):
        yield Violation("Runtime", "runtime", f"runtime {runtime!r} is not allowed")
    for key in _UNMASKING:
        if key in hc:
            yield Violation(
                key, "security_opt", "changing masked or read-only /proc paths is not allowed"
            )


def _port_bindings(bindings: Any, context: _Context) -> Iterator[Violation]:
    if not bindings:
        return
    if not isinstance(bindings, dict):
        yield Violation("PortBindings", "port_interfaces", "malformed port bindings")
        return
    for port, entries in bindings.items():
        for entry in _items(entries):
            address = _address(entry.get("HostIp") if isinstance(entry, dict) else None)
            if address not in context.interfaces:
                where = "all interfaces" if not address else f"interface {address}"
                yield Violation(
                    f"PortBindings[{port}]",
                    "port_interfaces",
                    f"port {port} is published on {where}",
                )


def _address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value)) if value else ""
    except ValueError:
        return str(value)


def _items(value: Any) -> list[Any]:
    """A list as given, nothing for empty values, and any other value as one item."""
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _bounded_logs(config: Any) -> bool:
    if not isinstance(config, dict):
        return False
    if config.get("Type") == "none":
        return True
    options = config.get("Config") or {}
    return config.get("Type") in ("json-file", "local") and bool(options.get("max-size"))
