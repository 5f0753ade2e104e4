"""One service: a table from Compose key to reader, and the readers for nested blocks.

The table is the whitelist: a key not in it is refused by name. That is what keeps the
policy sound, since a key we do not read is a key the policy cannot judge.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apps.compose.errors import FieldError, Problem, problem_in
from apps.compose.fields import (
    DNS_NAME,
    absolute_path,
    choice,
    command,
    each,
    keyed,
    list_or_map,
    mapping,
    only_keys,
    resource_name,
    sequence,
    string_list,
)
from apps.compose.files import service_files
from apps.compose.images import ImageReferenceError, parse_image
from apps.compose.limits import Limits
from apps.compose.mounts import parse_mounts
from apps.compose.ports import parse_expose, parse_ports
from apps.compose.spec import (
    Dependency,
    DeploySpec,
    Healthcheck,
    Resources,
    RestartPolicy,
    ServiceNetwork,
    ServiceSpec,
    UpdateConfig,
)
from apps.compose.values import (
    boolean,
    duration,
    integer,
    kind_of,
    number,
    scalar_text,
    show,
    size,
    text,
)

Reader = Callable[[Any, Limits], Any]

_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_CONSTRAINT = re.compile(r"^[\w.-]+\s*(==|!=)\s*\S.*$")
_SPREAD = re.compile(r"^node\.[\w.-]+$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure)(?::(\d{1,4}))?$")
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_RESOURCE_KEYS = {"limits": ("cpus", "memory", "pids"), "reservations": ("cpus", "memory")}
_HINTS = {
    "build": "Berth deploys images: build and push the image, then use 'image'",
    "env_file": "put the variables in 'environment' instead",
    "container_name": "Berth names containers itself",
}


def parse_service(
    name: str, value: Any, limits: Limits
) -> tuple[ServiceSpec | None, list[Problem]]:
    """Read one service; return it, or None with every problem found in it."""
    try:
        data = mapping(value, limits)
    except FieldError as exc:
        return None, [problem_in("services", name, exc.at.lstrip("."), exc.message)]
    fields, extensions, problems = {}, {}, []
    for key, item in data.items():
        if key.startswith("x-"):
            extensions[key] = item
        elif key not in SERVICE_KEYS:
            problems.append(unsupported(name, key))
        else:
            try:
                fields[key] = SERVICE_KEYS[key](item, limits)
            except FieldError as exc:
                problems.append(problem_in("services", name, f"{key}{exc.at}", exc.message))
    problems += [problem_in("services", name, k, msg) for k, msg in _cross_checks(data, fields)]
    if problems:
        return None, problems
    return ServiceSpec(name=name, extensions=extensions, **fields), []


def unsupported(name: str, key: str) -> Problem:
    """The message every unknown key gets, with a hint for the common ones."""
    hint = f": {_HINTS[key]}" if key in _HINTS else ""
    message = f"service '{name}': key '{key}' is not supported by Berth{hint}"
    return Problem(f"services.{name}.{key}", message)


def _cross_checks(data: dict[str, Any], fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules spanning several keys, checked only once each key reads cleanly."""
    errors = []
    if "image" not in data:
        errors.append(("image", "is required (Berth runs images, it does not build them)"))
    if fields.get("network_mode") and "networks" in data:
        errors.append(("networks", "cannot be combined with network_mode"))
    if fields.get("network_mode") and fields.get("ports"):
        errors.append(("ports", "cannot be published when network_mode is set"))
    limit, reservation = fields.get("mem_limit"), fields.get("mem_reservation")
    if limit and reservation and reservation > limit:
        errors.append(("mem_reservation", "is larger than mem_limit"))
    return errors


def _image(value: Any, limits: Limits) -> str:
    """A reference that names a repository: image ids are refused (apps.compose.images)."""
    image = text(value, limits, size=512)
    try:
        parse_image(image)
    except ImageReferenceError as exc:
        raise FieldError(str(exc)) from None
    return image


def _environment(value: Any, limits: Limits) -> dict[str, str | None]:
    return list_or_map(value, limits, bare=None)


def _labels(value: Any, limits: Limits) -> dict[str, str]:
    return list_or_map(value, limits, bare="")


def _sysctls(value: Any, limits: Limits) -> dict[str, str]:
    return list_or_map(value, limits, bare="error")


def _short_text(value: Any, limits: Limits) -> str:
    word = scalar_text(value, limits)
    if not word or len(word) > 256:
        raise FieldError("must be a non-empty string of at most 256 characters")
    return word


def _capabilities(value: Any, limits: Limits) -> tuple[str, ...]:
    """Capabilities as Docker spells them: upper case, without the "CAP_" prefix."""
    names = [name.upper().removeprefix("CAP_") for name in string_list(value, limits)]
    for index, name in enumerate(names):
        if not _CAPABILITY.match(name):
            raise FieldError(f"invalid capability {name!r}", at=f"[{index}]")
    return tuple(names)


def _devices(value: Any, limits: Limits) -> tuple[str, ...]:
    """Devices in short ("/dev/x:/dev/y:rwm") or long form, kept as short strings."""
    return tuple(each(sequence(value, limits), lambda item: _device(item, limits)))


def _device(item: Any, limits: Limits) -> str:
    if isinstance(item, dict):
        only_keys(item, ("source", "target", "permissions"))
        parts = [keyed(item, k, lambda v: text(v, limits)) for k in ("source", "target")]
        permissions = keyed(item, "permissions", lambda v: text(v, limits))
        return ":".join(p for p in [*parts, permissions] if p)
    device = text(item, limits, what="a device path")
    if not device:
        raise FieldError("a device cannot be empty")
    return device


def _service_networks(value: Any, limits: Limits) -> dict[str, ServiceNetwork]:
    """``networks``: a list of names, or a mapping of name to {aliases}."""
    if isinstance(value, list):
        names = each(sequence(value, limits), lambda v: resource_name(v, limits, what="network"))
        return {name: ServiceNetwork() for name in names}
    data = mapping(value, limits)
    return {
        _network_name(name, limits): keyed(data, name, lambda v: _network_options(v, limits))
        for name in data
    }


def _network_name(name: str, limits: Limits) -> str:
    try:
        return resource_name(name, limits, what="network")
    except FieldError as exc:
        raise exc.within(f".{name}") from None


def _network_options(value: Any, limits: Limits) -> ServiceNetwork:
    if value is None:
        return ServiceNetwork()
    data = mapping(value, limits)
    only_keys(data, ("aliases",))
    aliases = keyed(data, "aliases", lambda v: _aliases(v, limits), ())
    return ServiceNetwork(aliases=aliases)


def _aliases(value: Any, limits: Limits) -> tuple[str, ...]:
    names = string_list(value, limits)
    for index, alias in enumerate(names):
        if not DNS_NAME.match(alias):
            raise FieldError(f"invalid network alias {alias!r}", at=f"[{index}]")
    return names


def _depends_on(value: Any, limits: Limits) -> dict[str, Dependency]:
    """``depends_on``: a list of services, or a mapping with a condition for each."""
    if isinstance(value, list):
        names = string_list(value, limits)
        if len(set(names)) != len(names):
            raise FieldError("a service is listed twice")
        return {name: Dependency() for name in names}
    return {
        name: keyed(value, name, lambda v: _dependency(v, limits))
        for name in mapping(value, limits)
    }


def _dependency(value: Any, limits: Limits) -> Dependency:
    data = mapping(value, limits)
    only_keys(data, ("condition", "restart", "required"))
    return Dependency(
        condition=keyed(data, "condition", lambda v: choice(v, _CONDITIONS), _CONDITIONS[0]),
        restart=keyed(data, "restart", boolean, False),
        required=keyed(data, "required", boolean, True),
    )


def _healthcheck(value: Any, limits: Limits) -> Healthcheck:
    data = mapping(value, limits)
    only_keys(
        data,
        ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"),
    )
    disabled = keyed(data, "disable", boolean, False)
    if disabled and "test" in data:
        raise FieldError("'disable' and 'test' cannot be set together", at=".disable")
    test = ("NONE",) if disabled else keyed(data, "test", lambda v: _health_test(v, limits))
    timings = {
        key: keyed(data, key, duration)
        for key in ("interval", "timeout", "start_period", "start_interval")
    }
    retries = keyed(data, "retries", lambda v: integer(v, low=0, high=1000))
    return Healthcheck(test=test, retries=retries, **timings)


def _health_test(value: Any, limits: Limits) -> tuple[str, ...]:
    """String -> ("CMD-SHELL", s); a list must start with CMD, CMD-SHELL or NONE."""
    if isinstance(value, str):
        return ("CMD-SHELL", text(value, limits))
    test = string_list(value, limits)
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise FieldError("a test list must start with 'CMD', 'CMD-SHELL' or 'NONE'")
    if test[0] == "NONE" and len(test) > 1:
        raise FieldError("'NONE' takes no arguments")
    if test[0] == "CMD" and len(test) < 2:
        raise FieldError("'CMD' needs the command to run")
    if test[0] == "CMD-SHELL" and len(test) != 2:
        raise FieldError("'CMD-SHELL' takes exactly one shell command")
    return test


def _restart(value: Any, limits: Limits) -> RestartPolicy:
    word = value if isinstance(value, str) else None
    match = _RESTART.match(word or "")
    if match is None or (match.group(2) and match.group(1) != "on-failure"):
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        raise FieldError(
            f"invalid restart policy {shown}: use no, always, on-failure[:N] or unless-stopped"
        )
    retries = int(match.group(2)) if match.group(2) else None
    return RestartPolicy(name=match.group(1), max_retries=retries)


def _deploy(value: Any, limits: Limits) -> DeploySpec:
    data = mapping(value, limits)
    only_keys(data, ("replicas", "resources", "update_config", "placement", "labels"))
    resources = keyed(data, "resources", lambda v: _resources(v, limits), {})
    constraints, preferences, per_node = keyed(
        data, "placement", lambda v: _placement(v, limits), ((), (), None)
    )
    return DeploySpec(
        replicas=keyed(data, "replicas", lambda v: integer(v, low=0, high=limits.max_replicas)),
        update_config=keyed(data, "update_config", lambda v: _update_config(v, limits)),
        placement_constraints=constraints,
        placement_preferences=preferences,
        max_replicas_per_node=per_node,
        labels=keyed(data, "labels", lambda v: _labels(v, limits), {}),
        **resources,
    )


def _resources(value: Any, limits: Limits) -> dict[str, Resources]:
    data = mapping(value, limits)
    only_keys(data, ("limits", "reservations"))
    return {
        key: keyed(data, key, lambda v, allowed=allowed: _resource(v, limits, allowed))
        for key, allowed in _RESOURCE_KEYS.items()
        if key in data
    }


def _resource(value: Any, limits: Limits, allowed: tuple[str, ...]) -> Resources:
    data = mapping(value, limits)
    only_keys(data, allowed)
    return Resources(
        cpus=keyed(data, "cpus", _cpus),
        memory=keyed(data, "memory", size),
        pids=keyed(data, "pids", lambda v: integer(v, low=1, high=4_194_304)),
    )


def _cpus(value: Any) -> float:
    return number(value, low=0, high=1024)


def _update_config(value: Any, limits: Limits) -> UpdateConfig:
    data = mapping(value, limits)
    only_keys(
        data, ("parallelism", "delay", "order", "failure_action", "monitor", "max_failure_ratio")
    )
    return UpdateConfig(
        parallelism=keyed(data, "parallelism", lambda v: integer(v, low=0, high=1000)),
        delay=keyed(data, "delay", duration),
        order=keyed(data, "order", lambda v: choice(v, ("stop-first", "start-first"))),
        failure_action=keyed(
            data, "failure_action", lambda v: choice(v, ("continue", "rollback", "pause"))
        ),
        monitor=keyed(data, "monitor", duration),
        max_failure_ratio=keyed(
            data, "max_failure_ratio", lambda v: number(v, low=0, high=1, zero_ok=True)
        ),
    )


def _placement(value: Any, limits: Limits) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
    """(constraints, spread preferences, max_replicas_per_node)."""
    data = mapping(value, limits)
    only_keys(data, ("constraints", "preferences", "max_replicas_per_node"))
    constraints = keyed(data, "constraints", lambda v: string_list(v, limits), ())
    for index, constraint in enumerate(constraints):
        if not _CONSTRAINT.match(constraint):
            raise FieldError(
                f"invalid constraint {constraint!r}: expected 'attribute==value' or "
                "'attribute!=value'",
                at=f".constraints[{index}]",
            )
    preferences = keyed(data, "preferences", lambda v: _preferences(v, limits), ())
    per_node = keyed(
        data, "max_replicas_per_node", lambda v: integer(v, low=1, high=limits.max_replicas)
    )
    return constraints, preferences, per_node


def _preferences(value: Any, limits: Limits) -> tuple[str, ...]:
    """Compose's `[{spread: node.labels.zone}]`: the spread descriptors."""
    if not isinstance(value, list):
        raise FieldError("must be a list of {spread: <node attribute>}")
    found = []
    for index, item in enumerate(value):
        data = mapping(item, limits)
        only_keys(data, ("spread",))
        spread = data.get("spread")
        if not isinstance(spread, str) or not _SPREAD.match(spread):
            raise FieldError(
                "spread must name a node attribute (node.labels.<name>, node.hostname ...)",
                at=f"[{index}].spread",
            )
        found.append(spread)
    return tuple(found)


def _stop_grace(value: Any, limits: Limits) -> float:
    """A duration no longer than the platform allows: a stop holds a worker that long."""
    seconds = duration(value)
    if seconds > limits.max_stop_grace:
        raise FieldError(
            f"{show(value)} is too long: at most {limits.max_stop_grace:g}s "
            "on this platform (BERTH_MAX_STOP_GRACE_SECONDS)"
        )
    return seconds


def _unlimited(read: Callable[[Any], Any]) -> Reader:
    """Adapt a scalar reader that needs no limits to the table's (value, limits) shape."""
    return lambda value, limits: read(value)


SERVICE_KEYS: dict[str, Reader] = {
    "image": _image,
    "command": command,
    "entrypoint": command,
    "environment": _environment,
    "ports": parse_ports,
    "expose": parse_expose,
    "volumes": parse_mounts,
    "networks": _service_networks,
    "depends_on": _depends_on,
    "healthcheck": _healthcheck,
    "restart": _restart,
    "labels": _labels,
    "user": _short_text,
    "working_dir": absolute_path,
    "stop_grace_period": _stop_grace,
    "cpus": _unlimited(_cpus),
    "mem_limit": _unlimited(size),
    "mem_reservation": _unlimited(size),
    "deploy": _deploy,
    "privileged": _unlimited(boolean),
    "cap_add": _capabilities,
    "cap_drop": _capabilities,
    "devices": _devices,
    "device_cgroup_rules": string_list,
    "network_mode": _short_text,
    "pid": _short_text,
    "ipc": _short_text,
    "uts": _short_text,
    "userns_mode": _short_text,
    "volumes_from": string_list,
    "security_opt": string_list,
    "sysctls": _sysctls,
    "cgroup_parent": _short_text,
    "secrets": service_files("secret"),
    "configs": service_files("config"),
}
