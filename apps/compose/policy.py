"""The tenant policy on a parsed project: what a non-admin tenant may not run.

Everything that could give a container root on the host, reach another tenant's
containers or volumes, or confuse Berth's own bookkeeping is refused here, by rule name,
so an admin can allow a named exception per environment. Because parsing happens after
interpolation and YAML merging, the checks below see final values whatever the syntax.
The same rules are applied again, on the Docker API request itself, by
``check_host_config`` (re-exported here from ``host_policy``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Iterator

from apps.compose.errors import Problem
from apps.compose.host_policy import check_hardening, check_host_config
from apps.compose.mounts import HOST_PATH_PREFIXES
from apps.compose.rules import (
    RULES,
    Violation,
    check_exceptions,
    host_path_violation,
    is_berth_label,
    is_safe_security_opt,
    to_problem,
)
from apps.compose.spec import ComposeProject, NetworkSpec, PortSpec, ServiceSpec, VolumeSpec

__all__ = [
    "RULES",
    "check_hardening",
    "check_host_config",
    "check_policy",
    "normalize_interfaces",
    "normalize_ports",
    "policy_violations",
]

DEFAULT_INTERFACES = frozenset({"127.0.0.1"})
_SAFE_IPC = (None, "private", "shareable", "none")
_NETWORK_DRIVERS = (None, "bridge", "overlay")


def check_policy(
    project: ComposeProject,
    *,
    allowed_exceptions: Iterable[str] = frozenset(),
    allowed_interfaces: Iterable[str] = DEFAULT_INTERFACES,
) -> list[Problem]:
    """Every policy violation in ``project`` except the rules named in ``allowed_exceptions``.

    Call ``normalize_ports`` first, or ports without ``host_ip`` count as published on all
    interfaces. Raises ValueError for an unknown rule name or a malformed interface (those
    come from the platform's settings, not from the tenant).
    """
    allowed = check_exceptions(allowed_exceptions)
    return [
        to_problem(kind, name, f"{section}.{name}.", violation)
        for kind, section, name, violation in policy_violations(project, allowed_interfaces)
        if violation.rule not in allowed
    ]


def policy_violations(
    project: ComposeProject, allowed_interfaces: Iterable[str] = DEFAULT_INTERFACES
) -> Iterator[tuple[str, str, str, Violation]]:
    """Every rule ``project`` breaks, none excused: (kind, section, name, violation),
    e.g. ("service", "services", "web", Violation("privileged", ...)). What a stack
    deployed with exceptions uses is this list (apps.deployments.exceptions)."""
    interfaces = normalize_interfaces(allowed_interfaces)
    for name, service in project.services.items():
        for violation in _service_violations(service, project, interfaces):
            yield "service", "services", name, violation
    for kind, section, checker in _DEFINITION_CHECKS:
        for key, spec in getattr(project, section).items():
            for violation in checker(spec):
                yield kind, section, key, violation


def normalize_ports(project: ComposeProject, default_interface: str) -> ComposeProject:
    """A copy where ports without ``host_ip`` are bound to the environment's interface.

    Compose's default is "all interfaces"; on a shared host that is never what a tenant
    should get, so Berth makes the environment's interface the default instead.
    """
    interface = str(ipaddress.ip_address(default_interface))
    services = {
        name: dataclasses.replace(
            service,
            ports=tuple(
                port if port.host_ip else dataclasses.replace(port, host_ip=interface)
                for port in service.ports
            ),
        )
        for name, service in project.services.items()
    }
    return dataclasses.replace(project, services=services)


def normalize_interfaces(interfaces: Iterable[str]) -> frozenset[str]:
    """Canonical text of each address so "::0001" and "::1" compare equal."""
    return frozenset(str(ipaddress.ip_address(address)) for address in interfaces)


def _service_violations(
    service: ServiceSpec, project: ComposeProject, interfaces: frozenset[str]
) -> Iterator[Violation]:
    for check in _SERVICE_CHECKS:
        yield from check(service, project)
    yield from _ports(service, interfaces)


def _privileges(service: ServiceSpec, project: ComposeProject) -> Iterator[Violation]:
    if service.privileged:
        yield Violation("privileged", "privileged", "privileged mode is not allowed")
    if service.cap_add:
        names = ", ".join(service.cap_add)
        yield Violation("cap_add", "cap_add", f"adding capabilities ({names}) is not allowed")
    if service.devices:
        names = ", ".join(service.devices)
        yield Violation("devices", "devices", f"host devices ({names}) are not allowed")
    if service.device_cgroup_rules:
        yield Violation(
            "device_cgroup_rules", "device_cgroup_rules", "device cgroup rules are not allowed"
        )


def _namespaces(service: ServiceSpec, project: ComposeProject) -> Iterator[Violation]:
    """Host namespaces and other containers' namespaces; a sibling service is fine."""
    siblings = {f"service:{name}" for name in project.services if name != service.name}
    mode = service.network_mode
    if mode not in (None, "none") and mode not in siblings:
        yield Violation("network_mode", "network_mode", _namespace_message("network", mode))
    if service.pid is not None and service.pid not in siblings:
        yield Violation("pid", "pid", _namespace_message("PID", service.pid))
    if service.ipc not in _SAFE_IPC and service.ipc not in siblings:
        yield Violation("ipc", "ipc", _namespace_message("IPC", service.ipc))
    if service.uts is not None:
        yield Violation("uts", "uts", _namespace_message("UTS", service.uts))
    if service.userns_mode is not None:
        yield Violation(
            "userns_mode", "userns_mode", _namespace_message("user", service.userns_mode)
        )


def _namespace_message(kind: str, mode: str) -> str:
    if mode == "host":
        return f"the host {kind} namespace is not allowed"
    if mode.startswith("container:"):
        return f"joining another container's {kind} namespace is not allowed"
    if kind == "network":
        return f"network mode {mode!r} is not allowed: services join the stack's networks"
    return f"{kind} mode {mode!r} is not allowed"


def _mounts(service: ServiceSpec, project: ComposeProject) -> Iterator[Violation]:
    for index, mount in enumerate(service.volumes):
        if mount.type == "bind":
            yield host_path_violation(f"volumes[{index}]", mount.source or "")
    if service.volumes_from:
        names = ", ".join(service.volumes_from)
        yield Violation(
            "volumes_from",
            "volumes_from",
            f"mounting volumes of other containers ({names}) is not allowed",
        )


def _kernel(service: ServiceSpec, project: ComposeProject) -> Iterator[Violation]:
    unsafe = [opt for opt in service.security_opt if not is_safe_security_opt(opt)]
    if unsafe:
        yield Violation(
            "security_opt",
            "security_opt",
            f"security options ({', '.join(unsafe)}) are not allowed",
        )
    if service.sysctls:
        names = ", ".join(service.sysctls)
        yield Violation("sysctls", "sysctls", f"setting kernel parameters ({names}) is not allowed")
    if service.cgroup_parent is not None:
        yield Violation("cgroup_parent", "cgroup_parent", "a custom cgroup parent is not allowed")


def _labels(service: ServiceSpec, project: ComposeProject) -> Iterator[Violation]:
    yield from _berth_labels("labels", service.labels)
    yield from _berth_labels("deploy.labels", service.deploy.labels)


def _berth_labels(key: str, labels: dict[str, str]) -> Iterator[Violation]:
    reserved = [name for name in labels if is_berth_label(name)]
    if reserved:
        yield Violation(
            key,
            "berth_labels",
            f"labels in Berth's namespace ({', '.join(reserved)}) are reserved for Berth",
        )


def _ports(service: ServiceSpec, interfaces: frozenset[str]) -> Iterator[Violation]:
    allowed = ", ".join(sorted(interfaces)) or "none"
    for port in service.ports:
        if port.host_ip in interfaces:
            continue
        where = "all interfaces" if port.host_ip is None else f"interface {port.host_ip}"
        yield Violation(
            "ports",
            "port_interfaces",
            f"port {_port_text(port)} is published on {where}; allowed: {allowed}",
        )


def _port_text(port: PortSpec) -> str:
    published = port.published if port.published is not None else "(any)"
    return f"{published}->{port.target}/{port.protocol}"


def _volume_definition(volume: VolumeSpec) -> Iterator[Violation]:
    if volume.external or volume.name:
        yield Violation("external", "external_volumes", _outside_message("volume", volume))
    if volume.driver not in (None, "local"):
        yield Violation(
            "driver", "volume_driver", f"volume driver {volume.driver!r} is not allowed"
        )
    yield from _driver_opts(volume.driver_opts)
    yield from _berth_labels("labels", volume.labels)


def _driver_opts(options: dict[str, str]) -> Iterator[Violation]:
    """The local driver's options mount things: a host path (type=none, o=bind,
    device=/path) is a bind mount; another filesystem type (nfs, cifs, ext4...) is a
    volume driver matter; tmpfs is harmless."""
    kind, device = options.get("type"), options.get("device")
    flags = {part.strip() for part in options.get("o", "").split(",")}
    if kind in (None, "none") and (flags & {"bind", "rbind"} or _is_host_path(device)):
        yield host_path_violation("driver_opts", device or "(bind)")
    elif kind not in (None, "tmpfs") or device not in (None, "tmpfs"):
        yield Violation(
            "driver_opts",
            "volume_driver",
            f"driver options mounting {kind or device!r} are not allowed",
        )


def _is_host_path(path: str | None) -> bool:
    return bool(path) and path.startswith(HOST_PATH_PREFIXES)


def _network_definition(network: NetworkSpec) -> Iterator[Violation]:
    if network.external or network.name:
        yield Violation("external", "external_networks", _outside_message("network", network))
    if network.driver not in _NETWORK_DRIVERS:
        message = f"network driver {network.driver!r} is not allowed"
        yield Violation("driver", "network_driver", message)
    if network.driver_opts:
        yield Violation("driver_opts", "network_driver", "network driver options are not allowed")
    yield from _berth_labels("labels", network.labels)


def _outside_message(kind: str, spec: VolumeSpec | NetworkSpec) -> str:
    target = f" ({spec.name})" if spec.name else ""
    return f"{kind}s outside the stack{target} are not allowed (external or fixed name)"


_SERVICE_CHECKS: tuple[Callable[[ServiceSpec, ComposeProject], Iterator[Violation]], ...] = (
    _privileges,
    _namespaces,
    _mounts,
    _kernel,
    _labels,
)
_DEFINITION_CHECKS = (
    ("volume", "volumes", _volume_definition),
    ("network", "networks", _network_definition),
)
