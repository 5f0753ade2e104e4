"""A Revision's spec: the compose project as the reconciler will run it, as plain JSON.

`build_spec` is the one road from compose text to a spec (interpolation, the
environment's port interface, the tenant policy, the hardening defaults), so create,
redeploy, scale, upgrade and rollback all store a spec that already passed the policy.
`project_from_spec` turns it back into typed dataclasses for the driver and the planner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from apps.compose import ComposeError, load_compose
from apps.compose.policy import RULES, check_policy, normalize_ports
from apps.compose.spec import ComposeProject


def build_spec(
    compose_text: str,
    variables: Mapping[str, str],
    environment: Any,
    *,
    allow_all: bool = False,
) -> dict[str, Any]:
    """Compose text + answers -> the JSON spec of a Revision, or ComposeError.

    `allow_all` is for platform admins deploying on purpose: every policy rule becomes an
    allowed exception (the driver still adds the hardening to every container).
    """
    project = load_compose(compose_text, variables)
    project = normalize_ports(project, environment.publish_interface)
    problems = check_policy(
        project,
        allowed_exceptions=set(environment.policy_exceptions or ()),
        allowed_interfaces={environment.publish_interface},
    )
    granted = sorted({p.rule for p in problems}) if allow_all else []
    if problems and (not allow_all or not all(p.rule in RULES for p in problems)):
        raise ComposeError(problems)
    spec = {"project": dataclasses.asdict(project), "hardening": hardening_of(environment)}
    if granted:
        # The driver judges the final request again: it must know what the admin allowed.
        spec["admin_exceptions"] = granted
    return json.loads(json.dumps(spec))  # tuples -> lists: equal to what the database returns


def hardening_of(environment: Any) -> dict[str, Any]:
    """The limits every container of the environment gets unless the service sets its own."""
    return {
        "memory": int(environment.default_memory_limit),
        "pids": int(environment.default_pids_limit),
        "log_max_size": str(environment.log_max_size),
        "log_max_files": int(environment.log_max_files),
    }


def project_from_spec(spec: Mapping[str, Any]) -> ComposeProject:
    """The typed project stored in a spec (inverse of `dataclasses.asdict`)."""
    return _build(ComposeProject, spec["project"])


# Keys that change how many containers run or how a change is rolled out, not what a
# container is: changing them must not re-create running containers.
_NOT_HASHED = ("replicas", "update_config")


def service_hash(spec: Mapping[str, Any], service_name: str) -> str:
    """A stable hash of everything that requires re-creating a service's containers.

    The service's own spec minus scale and rollout settings, plus the hardening defaults
    (a changed memory default must reach running containers) and the definitions of the
    volumes it mounts.
    """
    project = spec["project"]
    service = json.loads(json.dumps(project["services"][service_name]))
    for key in _NOT_HASHED:
        (service.get("deploy") or {}).pop(key, None)
    mounted = {m.get("source") for m in service.get("volumes") or () if m.get("type") == "volume"}
    volumes = {k: v for k, v in (project.get("volumes") or {}).items() if k in mounted}
    payload = {"service": service, "hardening": spec.get("hardening"), "volumes": volumes}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a value of type `tp` (dataclass, tuple, dict, optional...) from JSON data."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in fields})
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(_build(item, v) for v in value)
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _build(item, v) for k, v in value.items()}
    return value
