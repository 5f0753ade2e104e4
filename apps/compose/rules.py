"""The policy's rule names: stable identifiers admins use to allow exceptions.

Renaming a rule would silently drop exceptions stored on environments, so names here are
part of the contract. ``RULES`` maps each name to a description for the admin form.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from apps.compose.errors import Problem

RULES: dict[str, str] = {
    "privileged": "privileged mode",
    "cap_add": "added Linux capabilities",
    "devices": "access to host devices",
    "device_cgroup_rules": "device cgroup rules",
    "network_mode": "host network namespace, other containers' networks, shared bridges",
    "pid": "host or other containers' process namespace",
    "ipc": "host or other containers' IPC namespace",
    "uts": "host UTS namespace",
    "userns_mode": "host user namespace (disables user namespace remapping)",
    "cgroupns": "host cgroup namespace",
    "bind_mounts": "bind mounts of host paths",
    "docker_socket": "mounting the Docker (or containerd) socket: full control of the host",
    "volumes_from": "mounting another container's volumes",
    "security_opt": "security options (seccomp, AppArmor, SELinux labels)",
    "sysctls": "kernel parameters",
    "cgroup_parent": "custom cgroup parent",
    "runtime": "non-default container runtime",
    "berth_labels": "labels in Berth's own namespace (io.berth.*)",
    "port_interfaces": "ports published on interfaces other than the environment's",
    "external_volumes": "volumes outside the stack (external or fixed names)",
    "external_networks": "networks outside the stack (external or fixed names)",
    "volume_driver": "volume drivers and driver options other than local/tmpfs",
    "network_driver": "network drivers and driver options other than bridge/overlay",
}

BERTH_LABEL_PREFIX = "io.berth."
DOCKER_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
)
SAFE_SECURITY_OPTS = frozenset(
    {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
)


@dataclass(frozen=True)
class Violation:
    """One broken rule, before it is worded for a service or a container."""

    key: str
    rule: str
    message: str


def check_exceptions(allowed: Iterable[str]) -> frozenset[str]:
    """Refuse unknown rule names: a typo must not look like an exception that works."""
    allowed = frozenset(allowed)
    unknown = allowed - RULES.keys()
    if unknown:
        raise ValueError(f"unknown policy rules: {', '.join(sorted(unknown))}")
    return allowed


def to_problem(kind: str, name: str, prefix: str, violation: Violation) -> Problem:
    """ "service 'web': privileged: privileged mode is not allowed (rule: privileged)"."""
    return Problem(
        path=f"{prefix}{violation.key}",
        message=f"{kind} '{name}': {violation.key}: {violation.message} (rule: {violation.rule})",
        rule=violation.rule,
    )


def is_berth_label(key: str) -> bool:
    lowered = key.strip().lower()
    return lowered == "io.berth" or lowered.startswith(BERTH_LABEL_PREFIX)


def is_docker_socket(path: str) -> bool:
    """The socket itself, a directory holding it (/, /var, /run...), or any docker.sock."""
    normal = posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else path
    if posixpath.basename(normal.rstrip("/")) in ("docker.sock", "containerd.sock"):
        return True
    if not normal.startswith("/"):
        return False
    folder = normal.rstrip("/") + "/"
    return any(sock == normal or sock.startswith(folder) for sock in DOCKER_SOCKETS)


def is_safe_security_opt(option: str) -> bool:
    return option.strip().lower() in SAFE_SECURITY_OPTS


def host_path_violation(key: str, path: str) -> Violation:
    """A mount of a host path; the Docker socket gets its own rule and message because it
    is root on the host, and allowing plain bind mounts must not allow it too."""
    if is_docker_socket(path):
        return Violation(
            key,
            "docker_socket",
            f"mounting the Docker socket ({path}) gives full control of the host and is not "
            "allowed",
        )
    return Violation(key, "bind_mounts", f"bind mounts of host paths ({path}) are not allowed")
