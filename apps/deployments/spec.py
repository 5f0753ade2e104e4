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

from django.core.exceptions import ValidationError

from apps.catalog.questions import is_hostname, route_path_problem
from apps.catalog.validation import deploy_refusals
from apps.compose import ComposeError, load_compose
from apps.compose.interpolate import interpolate, references
from apps.compose.policy import RULES, check_policy, normalize_ports
from apps.compose.spec import ComposeProject
from apps.compose.values import duration


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


def check_deploy_settings(project: ComposeProject, swarm: bool = False) -> None:
    """Refuse what Berth would otherwise parse and ignore (placement on a single engine,
    update_config it cannot honour): a ValidationError on `compose` naming each key."""
    refused = deploy_refusals(project, swarm=swarm)
    if refused:
        raise ValidationError({"compose": [f"{where}: {message}" for where, message in refused]})


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
    store = _store_payload(spec, service)
    if store:
        payload["store"] = store
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _store_payload(spec: Mapping[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    """The store entries a service mounts: the entry each key names and, when the
    reconciler folded them in (`spec["store_versions"]`, never stored), their versions,
    so a rotation replaces the containers. Empty lists are dropped from the service
    first: specs stored before secrets existed hash as they did."""
    versions = spec.get("store_versions") or {}
    project = spec["project"]
    found = {}
    for section in ("secrets", "configs"):
        refs = service.get(section)
        if not refs:
            service.pop(section, None)
            continue
        names = project.get(section) or {}
        for ref in refs:
            key = f"{section[:-1]}:{ref['source']}"
            found[key] = [(names.get(ref["source"]) or {}).get("name"), versions.get(key)]
    return found


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


# --- berth.yml's per-service settings, as the reconciler and the frontier read them ---------

UPGRADE_DEFAULTS: dict[str, Any] = {
    "strategy": "rolling",
    "batch_size": 1,
    "interval": 0.0,
    "order": "stop-first",
    "order_set": False,
    "canary_weight": 10,
    "monitor": 60.0,
    "failure_action": "rollback",
}


def berth_spec(
    project: ComposeProject,
    services_config: Mapping[str, Any] | None,
    variables: Mapping[str, Any],
) -> dict[str, Any]:
    """spec["berth"]: each service's routes (interpolated), upgrade settings and health check.

    `services_config` is berth.yml's `services` (None for a raw compose stack: upgrade
    settings from Compose's update_config only, no routes). Raises ValidationError for a
    route whose hostname is not a DNS name once interpolated, or two routes on the same
    hostname and path.
    """
    services_config = services_config or {}
    result: dict[str, Any] = {}
    taken: dict[tuple[str, str], str] = {}
    for name, service in project.services.items():
        conf = services_config.get(name) if isinstance(services_config.get(name), Mapping) else {}
        routes = _routes(name, conf.get("routes") or (), variables, taken)
        result[name] = {
            "routes": routes,
            "upgrade": upgrade_settings(conf.get("upgrade"), service, routed=bool(routes)),
            "health_check": conf.get("health_check"),
        }
    return {"services": result}


def _routes(
    service: str, raw: Any, variables: Mapping[str, Any], taken: dict[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """Interpolated routes; an empty hostname means no route (an optional question)."""
    routes = []
    for index, route in enumerate(raw):
        written = str(route.get("hostname") or "")
        field = next((r.name for r in references(written) if r.name in variables), "answers")
        try:
            hostname = str(interpolate(written, variables)).strip().lower()
            path = str(interpolate(str(route.get("path") or "/"), variables))
        except ComposeError as exc:
            raise ValidationError({field: exc.messages}) from exc
        if not hostname:
            continue
        where = f"services.{service}.routes[{index}]"
        if not is_hostname(hostname):
            raise ValidationError({field: f"{where}.hostname: {hostname!r} is not a DNS name"})
        problem = route_path_problem(path)
        if problem:
            raise ValidationError({field: f"{where}.path: {path!r} {problem}"})
        if (hostname, path) in taken:
            raise ValidationError(
                {
                    field: f"the route for services.{service} uses the same hostname and path "
                    f"as services.{taken[hostname, path]}"
                }
            )
        taken[hostname, path] = service
        routes.append({"hostname": hostname, "path": path, "port": int(route["port"])})
    return routes


def upgrade_settings(raw: Any, service: Any, *, routed: bool) -> dict[str, Any]:
    """berth.yml `upgrade`, else Compose's deploy.update_config, over the defaults.

    Parallelism 0 means every container at once (batch_size 0); a canary without a
    route is rolling (its hostname was left empty). Start-first is the default order
    of a routed service: its route always has a healthy container behind it.
    """
    result = dict(UPGRADE_DEFAULTS, order="start-first" if routed else "stop-first")
    given = _from_berth(raw) if isinstance(raw, Mapping) else _from_compose(service)
    result.update({k: v for k, v in given.items() if v is not None})
    if given.get("order"):
        result["order"] = given["order"].replace("_", "-")
        result["order_set"] = True
    if result["strategy"] == "canary" and not routed:
        result["strategy"] = "rolling"
    return result


def _from_berth(raw: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("strategy", "batch_size", "canary_weight", "failure_action", "order")
    given = {key: raw.get(key) for key in keys}
    for key in ("interval", "monitor"):
        if raw.get(key) is not None:
            given[key] = duration(raw[key], strict=True)
    return given


def _from_compose(service: Any) -> dict[str, Any]:
    config = service.deploy.update_config
    if config is None:
        return {}
    return {
        "batch_size": config.parallelism,
        "interval": config.delay,
        "monitor": config.monitor or None,
        "failure_action": config.failure_action,
        "order": config.order,
    }


def upgrade_of(spec: Mapping[str, Any], project: ComposeProject, name: str) -> dict[str, Any]:
    """A service's upgrade settings from a spec; specs stored before spec["berth"]
    existed get them from their update_config."""
    stored = ((spec.get("berth") or {}).get("services") or {}).get(name)
    if stored and stored.get("upgrade"):
        return {**UPGRADE_DEFAULTS, **stored["upgrade"]}
    return upgrade_settings(None, project.services[name], routed=False)


def routes_of(spec: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """The template routes a spec gives a service (user routes live in Route rows)."""
    stored = ((spec.get("berth") or {}).get("services") or {}).get(name) or {}
    return list(stored.get("routes") or ())


def with_strategy(spec: dict[str, Any], routed: set[str], strategy: str) -> dict[str, Any]:
    """A copy of `spec` whose routed services roll out with `strategy` this time (a
    redeploy as a canary, whatever berth.yml says); a canary needs a route."""
    if strategy not in ("rolling", "canary"):
        raise ValidationError({"strategy": "Choose rolling or canary."})
    services = (spec.get("berth") or {}).get("services") or {}
    targets = [name for name in services if name in routed] if strategy == "canary" else services
    if not targets:
        raise ValidationError(
            {"strategy": "A canary needs a route: add one to a service of this stack first."}
        )
    spec = json.loads(json.dumps(spec))
    for name in targets:
        spec["berth"]["services"][name]["upgrade"]["strategy"] = strategy
    return spec
