"""Parse interpolated compose data into a typed ``ComposeProject``.

Entry point: ``parse_project(data)``. It reads the whole file, collecting every problem
(an unknown key, a bad port, a dependency on a missing service, a cycle) and raises one
``ComposeError`` listing them all, so an author fixes a file in one round trip.
"""

from __future__ import annotations

import re
from typing import Any

from apps.compose.errors import ComposeError, FieldError, Problem, problem_in
from apps.compose.fields import (
    DNS_LABEL,
    keyed,
    list_or_map,
    mapping,
    only_keys,
    resource_name,
)
from apps.compose.files import store_reference
from apps.compose.graph import find_cycle, start_levels
from apps.compose.limits import DEFAULT_LIMITS, Limits
from apps.compose.service import parse_service
from apps.compose.spec import (
    ComposeProject,
    NetworkSpec,
    ServiceSpec,
    StoreReference,
    VolumeSpec,
)
from apps.compose.values import boolean, kind_of, scalar_text, text

TOP_LEVEL_KEYS = ("version", "name", "services", "volumes", "networks", "secrets", "configs")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOP_HINTS: dict[str, str] = {}
_VOLUME_KEYS = ("driver", "driver_opts", "external", "labels", "name")
_NETWORK_KEYS = ("driver", "driver_opts", "external", "labels", "name", "internal", "attachable")


def parse_project(data: Any, *, limits: Limits = DEFAULT_LIMITS) -> ComposeProject:
    """Validate and type a loaded, interpolated compose document, or raise ComposeError."""
    if not isinstance(data, dict):
        raise ComposeError(
            f"the compose file must be a mapping with a 'services' key, got {kind_of(data)}"
        )
    problems = _top_level_keys(data)
    name = _read_top(data, "name", lambda v: _project_name(v, limits), problems)
    volumes = _definitions(data, "volumes", _volume, limits, problems)
    networks = _definitions(data, "networks", _network, limits, problems)
    secrets = _definitions(data, "secrets", _stored("secret"), limits, problems)
    configs = _definitions(data, "configs", _stored("config"), limits, problems)
    services = _services(data, limits, problems)
    if not problems:
        problems = check_references(services, volumes, networks, secrets, configs)
    if problems:
        raise ComposeError(problems)
    extensions = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith("x-")}
    return ComposeProject(name, services, volumes, networks, extensions, secrets, configs)


def start_order(project: ComposeProject) -> list[list[str]]:
    """Service names in dependency levels; each level may start in parallel."""
    return start_levels({n: s.service_references() for n, s in project.services.items()})


def _top_level_keys(data: dict[Any, Any]) -> list[Problem]:
    problems = []
    for key in data:
        if isinstance(key, str) and (key in TOP_LEVEL_KEYS or key.startswith("x-")):
            continue
        hint = _TOP_HINTS.get(key, "") if isinstance(key, str) else ""
        problems.append(Problem(str(key), f"top-level key {key!r} is not supported by Berth{hint}"))
    return problems


def _read_top(data: dict[str, Any], key: str, read: Any, problems: list[Problem]) -> Any:
    try:
        return keyed(data, key, read)
    except FieldError as exc:
        path = exc.at.lstrip(".")
        problems.append(Problem(path, f"{path}: {exc.message}"))
        return None


def _project_name(value: Any, limits: Limits) -> str:
    name = text(value, limits, size=63)
    if not _PROJECT_NAME.match(name):
        raise FieldError(
            f"invalid project name {name!r}: use lower-case letters, digits, '-' and '_'"
        )
    return name


def _services(data: dict[str, Any], limits: Limits, problems: list[Problem]) -> dict:
    if not data.get("services"):
        problems.append(Problem("services", "the compose file defines no services"))
        return {}
    raw = _read_top(data, "services", lambda v: mapping(v, limits), problems)
    if raw is None:
        return {}
    if len(raw) > limits.max_services:
        message = f"too many services ({len(raw)}, at most {limits.max_services})"
        problems.append(Problem("services", message))
        return {}
    services: dict[str, ServiceSpec] = {}
    for name, value in raw.items():
        if not DNS_LABEL.match(name):
            problems.append(_bad_service_name(name))
            continue
        service, found = parse_service(name, value, limits)
        problems += found
        if service is not None:
            services[name] = service
    return services


def _bad_service_name(name: str) -> Problem:
    return Problem(
        f"services.{name}",
        f"service {name!r}: invalid service name: use 1 to 63 lower-case letters, digits "
        "and '-', starting and ending with a letter or digit",
    )


def _definitions(
    data: dict[str, Any], section: str, read: Any, limits: Limits, problems: list[Problem]
) -> dict:
    """Top-level ``volumes:`` or ``networks:``; a definition may be empty (``data:``)."""
    raw = _read_top(data, section, lambda v: mapping(v, limits) if v is not None else {}, problems)
    out = {}
    for key, value in (raw or {}).items():
        try:
            resource_name(key, limits, what=section[:-1])
            out[key] = read(key, {} if value is None else mapping(value, limits), limits)
        except FieldError as exc:
            problems.append(problem_in(section, key, exc.at.lstrip("."), exc.message))
    return out


def _stored(kind: str) -> Any:
    """The reader of a top-level secret or config: a store entry (apps.compose.files)."""
    return lambda key, data, limits: store_reference(kind, key, data, limits)


def _common(data: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Keys shared by volume and network definitions."""
    external = keyed(data, "external", lambda v: _external(v, limits), (False, None))
    name = keyed(data, "name", lambda v: resource_name(v, limits, what="engine"))
    return {
        "external": external[0],
        "name": name or external[1],
        "driver": keyed(data, "driver", lambda v: text(v, limits, size=128)),
        "driver_opts": keyed(data, "driver_opts", lambda v: _driver_opts(v, limits), {}),
        "labels": keyed(data, "labels", lambda v: _labels(v, limits), {}),
    }


def _volume(key: str, data: dict[str, Any], limits: Limits) -> VolumeSpec:
    only_keys(data, _VOLUME_KEYS, extensions=True)
    return VolumeSpec(key=key, **_common(data, limits))


def _network(key: str, data: dict[str, Any], limits: Limits) -> NetworkSpec:
    only_keys(data, _NETWORK_KEYS, extensions=True)
    return NetworkSpec(
        key=key,
        internal=keyed(data, "internal", boolean, False),
        attachable=keyed(data, "attachable", boolean, False),
        **_common(data, limits),
    )


def _external(value: Any, limits: Limits) -> tuple[bool, str | None]:
    """``external: true`` or the legacy ``external: {name: x}``."""
    if isinstance(value, dict):
        only_keys(value, ("name",))
        return True, keyed(value, "name", lambda v: resource_name(v, limits, what="engine"))
    return boolean(value), None


def _driver_opts(value: Any, limits: Limits) -> dict[str, str]:
    data = mapping(value, limits)
    return {key: keyed(data, key, lambda v: scalar_text(v, limits)) for key in data}


def _labels(value: Any, limits: Limits) -> dict[str, str]:
    return list_or_map(value, limits, bare="")


def check_references(
    services: dict[str, ServiceSpec],
    volumes: dict[str, VolumeSpec],
    networks: dict[str, NetworkSpec],
    secrets: dict[str, StoreReference] | None = None,
    configs: dict[str, StoreReference] | None = None,
) -> list[Problem]:
    """Every name a service uses exists in the file, and dependencies have no cycle."""
    problems = []
    defined = {"secrets": secrets or {}, "configs": configs or {}}
    for name, service in services.items():
        for key, message in _service_references(service, services, volumes, networks):
            problems.append(problem_in("services", name, key, message))
        for section, known in defined.items():
            for index, ref in enumerate(getattr(service, section)):
                if ref.source not in known:
                    message = f"uses undefined {section[:-1]} '{ref.source}'"
                    problems.append(problem_in("services", name, f"{section}[{index}]", message))
    cycle = find_cycle({n: s.service_references() - {n} for n, s in services.items()})
    if cycle:
        problems.append(Problem("services", f"dependency cycle: {' -> '.join(cycle)}"))
    return problems


def _service_references(
    service: ServiceSpec, services: dict, volumes: dict, networks: dict
) -> list[tuple[str, str]]:
    found = []
    for dep in service.depends_on:
        if dep == service.name:
            found.append(("depends_on", "a service cannot depend on itself"))
        elif dep not in services:
            found.append(("depends_on", f"depends on undefined service '{dep}'"))
    for net in service.networks:
        if net not in networks and net != "default":
            found.append(("networks", f"uses undefined network '{net}'"))
    for index, mount in enumerate(service.volumes):
        if mount.type == "volume" and mount.source and mount.source not in volumes:
            found.append((f"volumes[{index}]", f"uses undefined volume '{mount.source}'"))
    for key in ("network_mode", "pid", "ipc"):
        mode = getattr(service, key) or ""
        target = mode.partition(":")[2] if mode.startswith("service:") else None
        if target is not None and (target == service.name or target not in services):
            found.append((key, f"refers to undefined or own service '{target}'"))
    return found
