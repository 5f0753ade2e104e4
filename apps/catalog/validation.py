"""Whole-version and template-level checks of catalog/README.md, shared by the loader
(built-ins) and the publishing service (tenants' templates).

berth.yml on its own is read by `questions.parse_berth_yml`; here it meets its compose
file (variables used, services named, interpolated file parsed and held to the tenant
policy) and its sibling versions (upgrade_from references, answers lost on upgrade).
Problems are lines "<file>: <location>: <message>", grouped by the field they concern.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.catalog import semver
from apps.catalog.answers import (
    apply_migrations,
    generate_password,
    interpolation_values,
    sample_answers,
)
from apps.catalog.questions import (
    BerthConfigError,
    Problems,
    VersionConfig,
    answer_problem,
    is_hostname,
    parse_berth_yml,
)
from apps.compose import ComposeError, load_compose
from apps.compose.interpolate import interpolate, references
from apps.compose.policy import check_policy, normalize_ports
from apps.compose.yaml_safe import safe_load

BERTH_VARIABLES = {
    "BERTH_STACK_NAME": "sample",
    "BERTH_ENVIRONMENT": "dev",
    "BERTH_TENANT": "sample",
    "BERTH_REGISTRY": "127.0.0.1:5000",
}
TENANT_INTERFACE = "127.0.0.1"
CATEGORIES = {
    "demo": "Demo",
    "web": "Web servers",
    "database": "Databases",
    "cache": "Caches",
    "messaging": "Messaging",
    "storage": "Storage",
    "monitoring": "Monitoring",
    "devtools": "Developer tools",
    "cms": "Content management",
    "other": "Other",
}
TEMPLATE_KEYS = ("name", "category", "description", "icon", "maintainer", "tags", "homepage")
REQUIRED_TEMPLATE_KEYS = ("name", "category", "description", "icon", "maintainer", "tags")
SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
MAX_FILE_BYTES = 256 * 1024
DEFAULT_OPERATORS = (":-", "-")
REQUIRED_OPERATORS = (":?", "?")


def berth_version() -> str:
    return settings.BERTH_VERSION


# --- variables used in a file ----------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """One `$VAR` / `${VAR<op>word}` in a string value at `path`."""

    name: str
    operator: str
    word: str
    path: str


def uses_in(text: str, path: str) -> Iterator[Use]:
    """Every variable reference in `text`, nested defaults included, read by the same
    scanner that interpolates the file (`$$` is a literal dollar)."""
    for ref in references(text):
        yield Use(ref.name, ref.operator, ref.word, path)


def uses_in_tree(tree: Any, path: str = "") -> Iterator[Use]:
    """References in every string value (never mapping keys), with a dotted path."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from uses_in_tree(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from uses_in_tree(value, f"{path}[{index}]")
    elif isinstance(tree, str):
        yield from uses_in(tree, path)


def _route_uses(config: VersionConfig) -> Iterator[Use]:
    for name, service in config.services.items():
        for index, route in enumerate(service.get("routes") or []):
            for key in ("hostname", "path"):
                value = route.get(key) if isinstance(route, Mapping) else None
                if isinstance(value, str):
                    yield from uses_in(value, f"services.{name}.routes[{index}].{key}")


# --- one version -----------------------------------------------------------------------------


@dataclass
class VersionReport:
    """A version's config (when berth.yml parsed) and its problems by field."""

    config: VersionConfig | None
    errors: dict[str, list[str]]


def check_version_files(
    compose: str,
    berth_text: str,
    *,
    version: str,
    source: str = "",
    siblings: Mapping[str, VersionConfig] | None = None,
) -> VersionReport:
    """Every rule of the README for one version; `source` is "<slug>/<version>/".

    `siblings` maps the template's other versions to their configs, for upgrade_from
    and migrations. Errors are keyed "version", "berth" or "compose".
    """
    errors: dict[str, list[str]] = {}
    if not VERSION_RE.match(version or ""):
        errors["version"] = [f"{source or ''}version: {version!r} is not a version like 1.2.3"]
    try:
        config = parse_berth_yml(berth_text, source=f"{source}berth.yml", version=version)
    except BerthConfigError as exc:
        errors["berth"] = exc.problems
        return VersionReport(None, errors)
    berth = Problems(f"{source}berth.yml")
    compose_problems = Problems(f"{source}docker-compose.yml")
    _check_min_version(config, berth)
    _check_passwords(config, berth)
    data = _compose_data(compose, compose_problems)
    if data is not None:
        _check_variables(config, data, berth, compose_problems)
        _check_rendered(config, compose, berth, compose_problems)
    if siblings is not None and "version" not in errors:
        _check_upgrades(config, siblings, berth)
    for key, problems in (("berth", berth), ("compose", compose_problems)):
        if problems.items:
            errors.setdefault(key, []).extend(problems.items)
    return VersionReport(config, errors)


def _check_min_version(config: VersionConfig, problems: Problems) -> None:
    wanted = config.min_berth_version
    if wanted and semver.parse_version(wanted) > semver.parse_version(berth_version()):
        problems.add("min_berth_version", f"requires Berth >= {wanted}, this is {berth_version()}")


def _check_passwords(config: VersionConfig, problems: Problems) -> None:
    for index, question in enumerate(config.questions):
        generated = generate_password(question) if question.type == "password" else ""
        if question.pattern and generated and answer_problem(question, generated):
            where = f"questions[{index}] ({question.variable})"
            problems.add(where, "pattern does not accept the passwords Berth generates")


def _compose_data(compose: str, problems: Problems) -> Any:
    if not (compose or "").strip():
        problems.add("", "the compose file is empty")
        return None
    try:
        data = safe_load(compose)
    except ComposeError as exc:
        for message in exc.messages:
            problems.add("", message)
        return None
    if not isinstance(data, Mapping):
        problems.add("", "must be a mapping with services:")
        return None
    return data


def _check_variables(config: VersionConfig, data: Any, berth: Problems, compose: Problems) -> None:
    """Used variables are questions, Berth's or defaulted; every question is used."""
    asked = {q.variable: q for q in config.questions}
    compose_uses = list(uses_in_tree(data))
    all_uses = compose_uses + list(_route_uses(config))
    for use in compose_uses:
        question = asked.get(use.name)
        if question is None and use.name not in BERTH_VARIABLES:
            others = [u for u in all_uses if u.name == use.name]
            if not all(u.operator in DEFAULT_OPERATORS for u in others):
                compose.add(
                    f"{use.path}",
                    f"variable '{use.name}' is neither a question nor given a default",
                )
        elif question is not None:
            _check_use(question, use, compose)
    for use in _route_uses(config):
        if (
            use.name not in asked
            and use.name not in BERTH_VARIABLES
            and use.operator not in DEFAULT_OPERATORS
        ):
            berth.add(use.path, f"variable '{use.name}' is neither a question nor given a default")
    # A question that only switches others on (show_if) is used too: the README's
    # "used somewhere" read generously, or a toggle question could never exist.
    used = {u.name for u in all_uses} | {n for q in config.questions for n in q.show_if}
    for index, question in enumerate(config.questions):
        if question.variable not in used:
            berth.add(
                f"questions[{index}] ({question.variable})",
                f"variable '{question.variable}' is not used in docker-compose.yml or berth.yml",
            )


def _check_use(question: Any, use: Use, problems: Problems) -> None:
    if question.show_if and use.operator in REQUIRED_OPERATORS:
        problems.add(
            use.path,
            f"'{use.name}' has show_if (it may be unset): "
            f"do not use ${{{use.name}{use.operator}...}}",
        )
    if use.operator == ":-" and question.default is not None and "$" not in use.word:
        default = question.default
        text = ("true" if default else "false") if isinstance(default, bool) else str(default)
        if use.word != text:
            problems.add(
                use.path,
                f"${{{use.name}:-{use.word}}} differs from the question's default {text!r}",
            )


def _check_rendered(
    config: VersionConfig, compose: str, berth: Problems, problems: Problems
) -> None:
    """Interpolated with sample answers, the file parses and passes the tenant policy."""
    variables = {**BERTH_VARIABLES, **interpolation_values(config, sample_answers(config))}
    try:
        project = normalize_ports(load_compose(compose, variables), TENANT_INTERFACE)
    except ComposeError as exc:
        for message in exc.messages:
            problems.add("", message)
        return
    for problem in check_policy(project, allowed_interfaces=[TENANT_INTERFACE]):
        problems.add("", problem.message)
    for where, message in deploy_refusals(project):
        problems.add(where, message)
    for name, settings_ in config.services.items():
        service = project.services.get(name)
        where = f"services.{name}"
        if service is None:
            berth.add(where, "no such service in docker-compose.yml")
            continue
        if "scale" in settings_ and service.deploy.replicas is not None:
            berth.add(
                f"{where}.scale", "the compose file sets deploy.replicas too: use one or the other"
            )
        if "upgrade" in settings_ and service.deploy.update_config is not None:
            berth.add(
                f"{where}.upgrade",
                "the compose file sets deploy.update_config too: use one or the other",
            )
        _check_routes(settings_, where, variables, berth)


def deploy_refusals(project: Any, swarm: bool = False) -> list[tuple[str, str]]:
    """Compose deploy settings Berth cannot honour, as (location, message): refused at
    publication and at deploy, never parsed and ignored. On a Swarm cluster (`swarm`)
    placement constraints are honoured by Swarm."""
    found = []
    for name, service in project.services.items():
        where = f"services.{name}.deploy"
        placement = (
            service.deploy.placement_constraints
            or service.deploy.placement_preferences
            or service.deploy.max_replicas_per_node
        )
        if placement and not swarm:
            found.append(
                (
                    f"{where}.placement",
                    "placement (constraints, preferences, max_replicas_per_node) needs a "
                    "Swarm host; this environment runs on a single engine",
                )
            )
        config = service.deploy.update_config
        if config is not None and config.failure_action == "continue":
            found.append(
                (
                    f"{where}.update_config.failure_action",
                    "continue is not supported: a batch that does not become healthy is "
                    "rolled back (rollback) or stops the upgrade where it is (pause)",
                )
            )
        if config is not None and config.max_failure_ratio:
            found.append(
                (
                    f"{where}.update_config.max_failure_ratio",
                    "Berth acts on the first batch that does not become healthy: remove it "
                    "or set 0",
                )
            )
    return found


def _check_routes(settings_: Mapping, where: str, variables: dict, problems: Problems) -> None:
    for index, route in enumerate(settings_.get("routes") or []):
        try:
            hostname = interpolate(route.get("hostname", ""), variables)
        except ComposeError as exc:
            problems.add(f"{where}.routes[{index}].hostname", exc.messages[0])
            continue
        if hostname and not is_hostname(hostname.lower()):
            problems.add(
                f"{where}.routes[{index}].hostname", f"{hostname!r} is not a valid DNS name"
            )


def _check_upgrades(
    config: VersionConfig, siblings: Mapping[str, VersionConfig], problems: Problems
) -> None:
    """upgrade_from names existing older versions; no answer is silently lost."""
    mine = semver.parse_version(config.version)
    older = {
        v: c for v, c in siblings.items() if semver.is_version(v) and semver.parse_version(v) < mine
    }
    matched: set[str] = set()
    for index, rule in enumerate(config.upgrade_from):
        found = {v for v in older if semver.matches(v, rule)}
        if semver.is_version(rule) and rule not in older:
            exists = rule in siblings
            problems.add(
                f"upgrade_from[{index}]",
                f"version {rule} {'is not older than this one' if exists else 'does not exist'}",
            )
        elif not found:
            problems.add(f"upgrade_from[{index}]", f"{rule!r} matches no existing older version")
        matched |= found
    ordered = sorted(siblings.items(), key=lambda item: semver.parse_version(item[0]))
    for source in sorted(matched, key=semver.parse_version):
        answers = dict.fromkeys(older[source].variables, "")
        low = semver.parse_version(source)
        for name, sibling in ordered:
            if low < semver.parse_version(name) < mine:
                answers = apply_migrations(sibling, answers)
        answers = apply_migrations(config, answers)
        for variable in answers:
            if config.question(variable) is None:
                problems.add(
                    "upgrade_from",
                    f"answers to {variable} (a question of {source}) would be lost: "
                    "add a rename or drop migration",
                )


# --- template.yml ----------------------------------------------------------------------------


def check_template_meta(
    data: Any, source: str = "template.yml"
) -> tuple[dict[str, Any], list[str]]:
    """template.yml (or the publish form's metadata) -> Template fields, problems."""
    problems = Problems(source)
    if not isinstance(data, Mapping):
        problems.add("", "must be a mapping with name, category, description, icon...")
        return {}, problems.items
    for key in data:
        if key not in TEMPLATE_KEYS:
            problems.add(str(key), f"unknown key; use one of {', '.join(TEMPLATE_KEYS)}")
    for key in REQUIRED_TEMPLATE_KEYS:
        if key not in data:
            problems.add(key, "is required")
    _meta_fields(data, problems)
    values = {k: data[k] for k in TEMPLATE_KEYS if k in data}
    if isinstance(values.get("description"), str):
        values["description"] = " ".join(values["description"].split())
    return values, problems.items


def _text_ok(value: Any, low: int, high: int) -> bool:
    return (
        isinstance(value, str) and low <= len(value.strip()) <= high and "\n" not in value.strip()
    )


def _meta_fields(data: Mapping, problems: Problems) -> None:
    if "name" in data and not _text_ok(data["name"], 1, 80):
        problems.add("name", "must be one line of 1 to 80 characters")
    category = data.get("category")
    if "category" in data and category not in CATEGORIES:
        problems.add(
            "category", f"{category!r} is not a category; choose one of {', '.join(CATEGORIES)}"
        )
    description = data.get("description")
    if "description" in data and not (
        isinstance(description, str) and 1 <= len(" ".join(description.split())) <= 300
    ):
        problems.add("description", "must be plain text of 1 to 300 characters")
    if "maintainer" in data and not _text_ok(data["maintainer"], 1, 120):
        problems.add("maintainer", "must be one line of 1 to 120 characters")
    tags = data.get("tags")
    if "tags" in data and not (
        isinstance(tags, list)
        and len(tags) <= 10
        and len(set(map(str, tags))) == len(tags)
        and all(isinstance(t, str) and TAG_RE.match(t) for t in tags)
    ):
        problems.add("tags", "0 to 10 unique tags like web or key-value")
    homepage = data.get("homepage")
    if homepage is not None and not (
        isinstance(homepage, str) and re.match(r"^https?://\S+$", homepage) and len(homepage) <= 300
    ):
        problems.add("homepage", "must be an http:// or https:// URL of at most 300 characters")


def is_emoji(text: Any) -> bool:
    return (
        isinstance(text, str)
        and 0 < len(text.encode()) <= 16
        and not re.search(r"[A-Za-z0-9/.\s]", text)
    )


_SVG_BAD = re.compile(r"<script|\son\w+\s*=|(?:href|src)\s*=\s*[\"'](?!data:|#)", re.IGNORECASE)


def icon_data_url(name: str, content: bytes) -> tuple[str, str]:
    """(data URL, "") for a safe SVG or PNG icon file, or ("", problem)."""
    if len(content) > MAX_FILE_BYTES:
        return "", "the icon is larger than 256 KiB"
    if name.endswith(".png"):
        if not content.startswith(b"\x89PNG\r\n\x1a\n"):
            return "", "not a PNG file"
        return "data:image/png;base64," + base64.b64encode(content).decode(), ""
    if not name.endswith(".svg"):
        return "", "an icon file must end in .svg or .png"
    try:
        text = content.decode()
        import xml.etree.ElementTree as ElementTree

        if "<!ENTITY" in text or "<!DOCTYPE" in text:
            return "", "SVG icons may not declare entities or a DOCTYPE"
        # No DOCTYPE, so no entity expansion: the known XML attacks need one.
        root = ElementTree.fromstring(text)  # noqa: S314
    except (UnicodeDecodeError, ElementTree.ParseError) as exc:
        return "", f"not well-formed SVG ({exc})"
    if not root.tag.endswith("svg"):
        return "", "the SVG root element must be <svg>"
    if _SVG_BAD.search(text):
        return "", "SVG icons may not contain scripts, on* attributes or external references"
    return "data:image/svg+xml;base64," + base64.b64encode(content).decode(), ""
