"""What changed between two revisions, in words and as a diff (pure: no models, no I/O).

Every Revision carries a readable summary so that people can tell, in the revisions list,
which one changed the image or the scale before they roll back. Secret values (answers
to password and secret questions, and variables whose name says so) never appear: a
revision page is readable by viewers, who must not learn passwords from it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from apps.catalog.questions import looks_secret

MASK = "••••••"
SECRET_NAME = re.compile(r"pass|secret|token|key|credential|private", re.IGNORECASE)
LIMIT_FIELDS = ("cpus", "memory", "pids")


def is_secret_name(name: str, secret_names: Iterable[str] = ()) -> bool:
    """A variable is secret when its question says so or its name looks like one."""
    return name in set(secret_names) or bool(SECRET_NAME.search(name)) or looks_secret(name)


def services_of(spec: Mapping[str, Any] | None) -> dict[str, dict]:
    """The services of a spec: `build_spec` nests them under "project"."""
    if not spec:
        return {}
    project = spec.get("project") if isinstance(spec.get("project"), Mapping) else spec
    services = project.get("services") or {}
    return {name: dict(svc or {}) for name, svc in services.items()}


def replicas_of(service: Mapping[str, Any]) -> int:
    """`deploy.replicas`, 1 when absent (the Compose default)."""
    deploy = service.get("deploy") or {}
    replicas = deploy.get("replicas")
    return 1 if replicas is None else int(replicas)


def limits_of(service: Mapping[str, Any]) -> dict[str, Any]:
    """CPU, memory and process limits, from `deploy.resources.limits` or the short keys."""
    limits = dict((service.get("deploy") or {}).get("limits") or {})
    if limits.get("memory") is None and service.get("mem_limit") is not None:
        limits["memory"] = service["mem_limit"]
    if limits.get("cpus") is None and service.get("cpus") is not None:
        limits["cpus"] = service["cpus"]
    return {k: limits.get(k) for k in LIMIT_FIELDS if limits.get(k) is not None}


def ports_of(service: Mapping[str, Any]) -> list[str]:
    """Published ports as "ip:published->target/proto", sorted, for comparing and reading."""
    shown = []
    for port in service.get("ports") or []:
        if isinstance(port, Mapping):
            host = f"{port.get('host_ip') or ''}:{port.get('published') or ''}".strip(":")
            target = f"{port.get('target')}/{port.get('protocol') or 'tcp'}"
            shown.append(f"{host}->{target}" if host else target)
        else:
            shown.append(str(port))
    return sorted(shown)


def _masker(masked: bool):
    return lambda value: MASK if masked and value not in (None, "") else value


def _variable_changes(old: Mapping, new: Mapping, secret_names: Iterable[str]) -> list[dict]:
    secret_names = set(secret_names)
    changes = []
    for name in sorted(set(old) | set(new)):
        masked = is_secret_name(name, secret_names)
        shown = _masker(masked)
        if name not in old:
            changes.append(
                {"kind": "variable", "change": "added", "name": name, "to": shown(new[name])}
            )
        elif name not in new:
            changes.append(
                {"kind": "variable", "change": "removed", "name": name, "from": shown(old[name])}
            )
        elif old[name] != new[name]:
            changes.append(
                {
                    "kind": "variable",
                    "change": "changed",
                    "name": name,
                    "from": shown(old[name]),
                    "to": shown(new[name]),
                }
            )
    return changes


def _service_changes(name: str, old: Mapping, new: Mapping) -> list[dict]:
    changes = []
    if old.get("image") != new.get("image"):
        changes.append(
            {"kind": "image", "service": name, "from": old.get("image"), "to": new.get("image")}
        )
    if replicas_of(old) != replicas_of(new):
        changes.append(
            {"kind": "scale", "service": name, "from": replicas_of(old), "to": replicas_of(new)}
        )
    old_limits, new_limits = limits_of(old), limits_of(new)
    for field in LIMIT_FIELDS:
        if old_limits.get(field) != new_limits.get(field):
            changes.append(
                {
                    "kind": "limits",
                    "service": name,
                    "field": field,
                    "from": old_limits.get(field),
                    "to": new_limits.get(field),
                }
            )
    if ports_of(old) != ports_of(new):
        changes.append(
            {"kind": "ports", "service": name, "from": ports_of(old), "to": ports_of(new)}
        )
    return changes


def compute_changes(
    old_spec: Mapping | None,
    new_spec: Mapping,
    old_answers: Mapping | None,
    new_answers: Mapping | None,
    secret_names: Iterable[str] = (),
) -> list[dict]:
    """The structured list of changes (services, images, scale, limits, ports, variables)."""
    old_services, new_services = services_of(old_spec), services_of(new_spec)
    changes: list[dict] = []
    for name in sorted(set(old_services) | set(new_services)):
        if name not in old_services:
            image = new_services[name].get("image")
            changes.append({"kind": "service", "change": "added", "service": name, "image": image})
        elif name not in new_services:
            changes.append({"kind": "service", "change": "removed", "service": name})
        else:
            changes += _service_changes(name, old_services[name], new_services[name])
    changes += _variable_changes(old_answers or {}, new_answers or {}, secret_names)
    return changes


def _fmt_limit(field: str, value: Any) -> str:
    if value is None:
        return "none"
    if field == "memory" and isinstance(value, int):
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size and value % size == 0:
                return f"{value // size} {unit}"
    return str(value)


def describe(change: Mapping[str, Any]) -> str:
    """One change in a few words, e.g. "web: image nginx:1.25 → nginx:1.27"."""
    kind = change.get("kind")
    service = change.get("service")
    if kind == "service":
        return f"service {service} {change['change']}"
    if kind == "image":
        return f"{service}: image {change['from']} → {change['to']}"
    if kind == "scale":
        return f"{service}: scale {change['from']} → {change['to']}"
    if kind == "limits":
        field = change["field"]
        old, new = _fmt_limit(field, change["from"]), _fmt_limit(field, change["to"])
        return f"{service}: {field} limit {old} → {new}"
    if kind == "ports":
        return f"{service}: ports {', '.join(change['from']) or 'none'} → " + (
            ", ".join(change["to"]) or "none"
        )
    if kind == "variable":
        name, what = change["name"], change["change"]
        if what == "changed":
            return f"variable {name} changed ({change['from']} → {change['to']})"
        return f"variable {name} {what}"
    return str(change)


def summarize(
    old_spec: Mapping | None,
    new_spec: Mapping,
    old_answers: Mapping | None,
    new_answers: Mapping | None,
    secret_names: Iterable[str] = (),
) -> tuple[str, list[dict]]:
    """(readable summary, structured changes) from one revision to the next.

    `old_spec` None means a first deploy: the summary lists the services instead.
    """
    if old_spec is None:
        names = sorted(services_of(new_spec))
        count = len(names)
        summary = f"First deploy: {count} service{'s' if count != 1 else ''} ({', '.join(names)})"
        changes = compute_changes({}, new_spec, {}, new_answers, secret_names)
        return summary, changes
    changes = compute_changes(old_spec, new_spec, old_answers, new_answers, secret_names)
    if not changes:
        return "No changes", []
    return "; ".join(describe(c) for c in changes), changes


def masked_spec(
    spec: Mapping | None, secret_names: Iterable[str] = (), secret_values: Iterable[str] = ()
) -> Any:
    """A copy of the spec with secret environment values replaced by a mask."""
    values = {str(v) for v in secret_values if v not in (None, "") and len(str(v)) >= 4}

    def walk(node: Any, in_environment: bool = False) -> Any:
        if isinstance(node, Mapping):
            return {
                k: MASK
                if in_environment and node[k] and is_secret_name(str(k), secret_names)
                else walk(v, k == "environment")
                for k, v in node.items()
            }
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        if isinstance(node, str):
            for value in values:
                node = node.replace(value, MASK)
        return node

    return walk(spec or {})


def dump(spec: Mapping | None, secret_names=(), secret_values=()) -> list[str]:
    """The spec as stable, sorted JSON lines: the text the diff is taken over."""
    text = json.dumps(
        masked_spec(spec, secret_names, secret_values),
        indent=2,
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return text.splitlines()


def diff(
    spec_a: Mapping | None,
    spec_b: Mapping | None,
    *,
    label_a: str = "a",
    label_b: str = "b",
    secret_names: Iterable[str] = (),
    secret_values: Iterable[str] = (),
) -> list[str]:
    """A unified diff between two specs, secrets masked; [] when they are equal."""
    secret_names, secret_values = list(secret_names), list(secret_values)
    return list(
        difflib.unified_diff(
            dump(spec_a, secret_names, secret_values),
            dump(spec_b, secret_names, secret_values),
            fromfile=label_a,
            tofile=label_b,
            lineterm="",
        )
    )
