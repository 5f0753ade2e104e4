"""The rules of catalog/README.md as plain functions over loaded YAML.

Each ``check_*`` function returns a list of problems (strings, empty when all is well),
so a test shows every problem of a file at once. This is a reference for the catalog
loader, not the loader itself: it knows nothing about models or the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
TAG = re.compile(r"[a-z0-9][a-z0-9-]{0,29}")
DURATION = re.compile(r"(\d+(\.\d+)?(us|ms|s|m|h))+")
COMPARATOR = re.compile(r"(>=|<=|>|<|=)(\S+)")
BUILTIN_VARIABLES = {"BERTH_STACK_NAME", "BERTH_ENVIRONMENT", "BERTH_TENANT", "BERTH_REGISTRY"}
CATEGORIES = (
    "demo", "web", "database", "cache", "messaging", "storage", "monitoring", "devtools",
    "cms", "other",
)  # fmt: skip
TYPES = ("string", "int", "bool", "enum", "password", "secret", "hostname", "multiline")
TEXT_TYPES = ("string", "password", "secret", "hostname", "multiline")
PATTERN_TYPES = ("string", "password", "secret", "hostname")
QUESTION_KEYS = {
    "variable", "label", "description", "type", "required", "default", "min", "max",
    "pattern", "options", "show_if", "group",
}  # fmt: skip
BERTH_KEYS = {"min_berth_version", "questions", "services", "upgrade_from", "migrations"}
SERVICE_KEYS = {"scale", "health_check", "routes", "upgrade"}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
META_KEYS = {"name", "category", "description", "icon", "maintainer", "tags", "homepage"}
META_REQUIRED = META_KEYS - {"homepage"}


# ---------------------------------------------------------------------------------------
# Versions and ranges
# ---------------------------------------------------------------------------------------


def semver_key(version: str) -> tuple:
    """A sort key giving semver precedence (a pre-release sorts before its release)."""
    match = SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def range_matches(item: str, version: str) -> bool:
    """Whether ``version`` satisfies an upgrade_from item (exact, ``*`` or comparators)."""
    if item == "*":
        return True
    if SEMVER.fullmatch(item):
        return item == version
    key = semver_key(version)
    for comparator in item.split():
        op, bound = COMPARATOR.fullmatch(comparator).groups()
        other = semver_key(bound)
        if not {
            ">=": key >= other, "<=": key <= other, ">": key > other,
            "<": key < other, "=": key == other,
        }[op]:  # fmt: skip
            return False
    return True


def range_problem(item: Any) -> str | None:
    if not isinstance(item, str):
        return f"{item!r} is not a string"
    if item == "*" or SEMVER.fullmatch(item):
        return None
    for comparator in item.split():
        match = COMPARATOR.fullmatch(comparator)
        if match is None or not SEMVER.fullmatch(match.group(2)):
            return f"{comparator!r} is not a comparator like >=1.0.0"
    return None if item.split() else "empty range"


# ---------------------------------------------------------------------------------------
# template.yml
# ---------------------------------------------------------------------------------------


def is_icon_file(icon: Any) -> bool:
    return isinstance(icon, str) and icon.endswith((".svg", ".png"))


def is_emoji(icon: Any) -> bool:
    return (
        isinstance(icon, str)
        and 0 < len(icon.encode()) <= 16
        and not re.search(r"[A-Za-z0-9/.]", icon)
    )


def check_template_meta(meta: Any, folder: Path) -> list[str]:
    if not isinstance(meta, dict):
        return ["template.yml is not a mapping"]
    problems = [f"unknown key {k!r}" for k in meta if k not in META_KEYS]
    problems += [f"missing {k!r}" for k in sorted(META_REQUIRED - set(meta))]
    problems += _text(meta, "name", 1, 80) + _text(meta, "description", 1, 300)
    problems += _text(meta, "maintainer", 1, 120)
    if meta.get("category") not in CATEGORIES:
        problems.append(f"category {meta.get('category')!r} is not one of {CATEGORIES}")
    icon = meta.get("icon")
    if is_icon_file(icon):
        if "/" in icon or not (folder / icon).is_file():
            problems.append(f"icon {icon!r} is not a file in the template folder")
    elif not is_emoji(icon):
        problems.append(f"icon {icon!r} is neither an .svg/.png file nor an emoji")
    tags = meta.get("tags")
    if not isinstance(tags, list) or len(tags) > 10 or len(set(map(str, tags))) != len(tags):
        problems.append("tags must be a list of at most 10 unique tags")
    else:
        problems += [
            f"bad tag {t!r}" for t in tags if not isinstance(t, str) or not TAG.fullmatch(t)
        ]
    homepage = meta.get("homepage")
    if homepage is not None and not (
        isinstance(homepage, str) and re.fullmatch(r"https?://\S{1,292}", homepage)
    ):
        problems.append(f"homepage {homepage!r} is not an http(s) URL")
    return problems


def _text(data: dict, key: str, low: int, high: int) -> list[str]:
    value = data.get(key)
    if not isinstance(value, str) or not low <= len(value.strip()) <= high:
        return [f"{key} must be a string of {low} to {high} characters"]
    if key != "description" and "\n" in value.strip():
        return [f"{key} must be one line"]
    return []


# ---------------------------------------------------------------------------------------
# Questions and answers
# ---------------------------------------------------------------------------------------


def check_questions(questions: Any) -> list[str]:
    if not isinstance(questions, list) or len(questions) > 100:
        return ["questions must be a list of at most 100 questions"]
    problems: list[str] = []
    seen: dict[str, dict] = {}
    for index, question in enumerate(questions):
        where = f"questions[{index}]"
        if not isinstance(question, dict):
            problems.append(f"{where}: not a mapping")
            continue
        where += f" ({question.get('variable')})"
        problems += [f"{where}: {p}" for p in _question_problems(question, seen)]
        if isinstance(question.get("variable"), str):
            seen[question["variable"]] = question
    return problems


def _question_problems(question: dict, earlier: dict[str, dict]) -> list[str]:
    problems = [f"unknown key {k!r}" for k in question if k not in QUESTION_KEYS]
    variable, kind = question.get("variable"), question.get("type")
    if not isinstance(variable, str) or not VARIABLE.fullmatch(variable):
        problems.append("variable must match [A-Z][A-Z0-9_]{0,63}")
    elif variable.startswith("BERTH_"):
        problems.append("the BERTH_ prefix is reserved")
    elif variable in earlier:
        problems.append("variable defined twice")
    problems += _text(question, "label", 1, 80)
    if "description" in question:
        description = question["description"]
        if not isinstance(description, str) or len(description) > 500:
            problems.append("description must be a string of at most 500 characters")
    if "group" in question and not (
        isinstance(question["group"], str) and 1 <= len(question["group"]) <= 40
    ):
        problems.append("group must be a string of 1 to 40 characters")
    if kind not in TYPES:
        return [*problems, f"type {kind!r} is not one of {TYPES}"]
    if not isinstance(question.get("required", False), bool):
        problems.append("required must be true or false")
    problems += _bounds_problems(question, kind)
    problems += _options_problems(question, kind)
    if "default" in question:
        if kind in ("password", "secret"):
            problems.append(f"a {kind} question cannot have a default")
        else:
            problems += [
                f"default: {m}" for m in answer_errors(question, question["default"], strict=True)
            ]
    problems += _show_if_problems(question, earlier)
    return problems


def _bounds_problems(question: dict, kind: str) -> list[str]:
    problems = []
    for key in ("min", "max"):
        if key not in question:
            continue
        value = question[key]
        if kind in ("bool", "enum"):
            problems.append(f"{key} is not allowed for {kind}")
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{key} must be a whole number")
        elif kind != "int" and value < 0:
            problems.append(f"{key} is a length: it cannot be negative")
    low, high = question.get("min"), question.get("max")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append("min is larger than max")
    if "pattern" in question:
        if kind not in PATTERN_TYPES:
            problems.append(f"pattern is not allowed for {kind}")
        else:
            try:
                re.compile(question["pattern"])
            except (re.error, TypeError) as exc:
                problems.append(f"pattern does not compile: {exc}")
    return problems


def _options_problems(question: dict, kind: str) -> list[str]:
    if kind != "enum":
        return ["options are only for enum questions"] if "options" in question else []
    options = question.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= 50:
        return ["an enum needs 1 to 50 options"]
    problems = [
        f"option {o!r} must be a string of 1 to 100 characters (quote it)"
        for o in options
        if not isinstance(o, str) or not 1 <= len(o) <= 100
    ]
    if len(set(map(str, options))) != len(options):
        problems.append("options are not unique")
    return problems


def _show_if_problems(question: dict, earlier: dict[str, dict]) -> list[str]:
    if "show_if" not in question:
        return []
    condition = question["show_if"]
    if not isinstance(condition, dict) or not condition:
        return ["show_if must be a mapping {OTHER_VARIABLE: value}"]
    problems = []
    for other, wanted in condition.items():
        if other not in earlier:
            problems.append(f"show_if refers to {other!r}, which is not an earlier question")
            continue
        for value in wanted if isinstance(wanted, list) else [wanted]:
            if answer_errors(earlier[other], value, strict=True):
                problems.append(f"show_if: {value!r} is not a valid answer to {other}")
    return problems


def is_shown(question: dict, answers: dict[str, Any]) -> bool:
    """show_if holds: every named variable has (one of) the wanted answer(s)."""
    for other, wanted in (question.get("show_if") or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if as_text(answers.get(other)) not in {as_text(v) for v in values}:
            return False
    return True


def as_text(value: Any) -> str | None:
    """How an answer is interpolated: bools as true/false, ints in decimal."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


HOSTNAME_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def is_hostname(value: str) -> bool:
    name = value.lower()
    if not 1 <= len(name) <= 253 or re.fullmatch(r"[0-9.]+", name):
        return False
    return all(HOSTNAME_LABEL.fullmatch(label) for label in name.split("."))


def answer_errors(question: dict, value: Any, *, strict: bool = False) -> list[str]:
    """The messages of catalog/README.md "Answers" for one answer.

    ``strict`` is for values written in berth.yml (defaults, show_if, set): they must be
    YAML values of the question's type, not strings a form would convert.
    """
    kind = question["type"]
    if kind == "bool":
        ok = isinstance(value, bool) or (
            not strict
            and str(value).lower() in {"true", "false", "1", "0", "yes", "no", "on", "off"}
        )
        return [] if ok else ["Enter true or false."]
    if kind == "int":
        return _int_errors(question, value, strict)
    if not isinstance(value, str):
        return ["Expected a string."]
    if kind == "enum":
        options = question.get("options") or []
        return [] if value in options else [f"Choose one of: {', '.join(map(str, options))}."]
    return _text_errors(question, value, kind)


def _int_errors(question: dict, value: Any, strict: bool) -> list[str]:
    if isinstance(value, bool) or not (
        isinstance(value, int)
        or (not strict and isinstance(value, str) and re.fullmatch(r"-?\d+", value))
    ):
        return ["Enter a whole number."]
    number = int(value)
    if "min" in question and number < question["min"]:
        return [f"Must be at least {question['min']}."]
    if "max" in question and number > question["max"]:
        return [f"Must be at most {question['max']}."]
    return []


def _text_errors(question: dict, value: str, kind: str) -> list[str]:
    errors = []
    controls = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]" if kind == "multiline" else r"[\x00-\x1f\x7f]"
    if re.search(controls, value):
        errors.append("Must be a single line of text.")
    if question.get("required") and not value:
        errors.append("This answer is required.")
    if "min" in question and len(value) < question["min"]:
        errors.append(f"Must be at least {question['min']} characters.")
    if "max" in question and len(value) > question["max"]:
        errors.append(f"Must be at most {question['max']} characters.")
    if kind == "hostname" and value and not is_hostname(value):
        errors.append("Enter a valid hostname (letters, digits and hyphens, separated by dots).")
    pattern = question.get("pattern")
    if pattern and value and not re.fullmatch(pattern, value):
        errors.append(f"Must match the pattern {pattern}.")
    return errors


# ---------------------------------------------------------------------------------------
# berth.yml
# ---------------------------------------------------------------------------------------


def check_berth_yml(berth: Any, compose: dict) -> list[str]:
    if not isinstance(berth, dict):
        return ["berth.yml is not a mapping"]
    problems = [f"unknown key {k!r}" for k in berth if k not in BERTH_KEYS]
    minimum = berth.get("min_berth_version")
    if minimum is not None and not (isinstance(minimum, str) and SEMVER.fullmatch(minimum)):
        problems.append(f"min_berth_version {minimum!r} is not a semantic version (quote it)")
    services = berth.get("services") or {}
    if not isinstance(services, dict):
        return [*problems, "services must be a mapping"]
    seen_routes: dict[tuple, str] = {}
    for name, settings in services.items():
        where = f"services.{name}"
        if name not in compose.get("services", {}):
            problems.append(f"{where}: no such service in docker-compose.yml")
            continue
        for route in (settings or {}).get("routes") or []:
            if isinstance(route, dict):
                key = (route.get("hostname"), route.get("path", "/"))
                if seen_routes.setdefault(key, name) != name:
                    problems.append(
                        f"{where}: a route has the same hostname and path as one of "
                        f"services.{seen_routes[key]}"
                    )
        problems += [
            f"{where}: {p}" for p in _service_problems(settings or {}, compose["services"][name])
        ]
    return problems


def _service_problems(settings: dict, spec: dict) -> list[str]:
    problems = [f"unknown key {k!r}" for k in settings if k not in SERVICE_KEYS]
    deploy = spec.get("deploy") or {}
    if "scale" in settings:
        scale = settings["scale"]
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 100:
            problems.append("scale must be a whole number from 0 to 100")
        if "replicas" in deploy:
            problems.append("scale and the Compose deploy.replicas are both set: use one")
    if "health_check" in settings:
        problems += _health_problems(settings["health_check"])
    routes = settings.get("routes") or []
    problems += _routes_problems(routes)
    if "upgrade" in settings:
        problems += _upgrade_problems(settings["upgrade"], bool(routes))
        if "update_config" in deploy:
            problems.append("upgrade and the Compose deploy.update_config are both set: use one")
    return problems


def _health_problems(check: Any) -> list[str]:
    if not isinstance(check, dict):
        return ["health_check must be a mapping"]
    problems = [f"health_check: unknown key {k!r}" for k in check if k not in HEALTH_KEYS]
    test = check.get("test")
    if check.get("disable") is True:
        if test is not None:
            problems.append("health_check: disable and test cannot be set together")
    elif isinstance(test, list):
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            problems.append("health_check.test must start with CMD, CMD-SHELL or NONE")
    elif not isinstance(test, str) or not test:
        problems.append("health_check.test is required")
    for key in ("interval", "timeout", "start_period"):
        if key in check and not DURATION.fullmatch(str(check[key])):
            problems.append(f"health_check.{key}: {check[key]!r} is not a duration like 5s")
    retries = check.get("retries", 3)
    if not isinstance(retries, int) or not 0 <= retries <= 1000:
        problems.append("health_check.retries must be 0 to 1000")
    return problems


def _routes_problems(routes: Any) -> list[str]:
    if not isinstance(routes, list) or len(routes) > 10:
        return ["routes must be a list of at most 10 routes"]
    problems, seen = [], set()
    for index, route in enumerate(routes):
        where = f"routes[{index}]"
        if not isinstance(route, dict):
            problems.append(f"{where}: not a mapping")
            continue
        problems += [
            f"{where}: unknown key {k!r}" for k in route if k not in ("hostname", "path", "port")
        ]
        if not isinstance(route.get("hostname"), str):
            problems.append(f"{where}.hostname is required (a hostname or ${{VARIABLE}})")
        path = route.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or " " in path or len(path) > 200:
            problems.append(f"{where}.path must start with / and have no spaces")
        port = route.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.append(f"{where}.port must be a container port from 1 to 65535")
        key = (route.get("hostname"), path)
        if key in seen:
            problems.append(f"{where}: the same hostname and path as an earlier route")
        seen.add(key)
    return problems


def _upgrade_problems(upgrade: Any, has_routes: bool) -> list[str]:
    if not isinstance(upgrade, dict):
        return ["upgrade must be a mapping"]
    allowed = {"strategy", "batch_size", "interval", "canary_weight"}
    problems = [f"upgrade: unknown key {k!r}" for k in upgrade if k not in allowed]
    strategy = upgrade.get("strategy", "rolling")
    if strategy not in ("rolling", "canary"):
        problems.append(f"upgrade.strategy {strategy!r} is not rolling or canary")
    batch = upgrade.get("batch_size", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 100:
        problems.append("upgrade.batch_size must be 1 to 100")
    if "interval" in upgrade and not DURATION.fullmatch(str(upgrade["interval"])):
        problems.append(f"upgrade.interval {upgrade['interval']!r} is not a duration like 10s")
    if "canary_weight" in upgrade:
        weight = upgrade["canary_weight"]
        if strategy != "canary":
            problems.append("upgrade.canary_weight is only for the canary strategy")
        elif not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 99:
            problems.append("upgrade.canary_weight must be 1 to 99")
    if strategy == "canary" and not has_routes:
        problems.append("a canary upgrade needs a route")
    return problems


# ---------------------------------------------------------------------------------------
# Interpolation
# ---------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolations(text: str) -> Iterator[tuple[str, str | None, str]]:
    """(variable, operator or None, word) for every ``$`` form in ``text``, nested too."""
    pos = 0
    while (dollar := text.find("$", pos)) >= 0:
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            pos = dollar + 2
        elif following == "{":
            name_match = _NAME.match(text, dollar + 2)
            if name_match is None:
                raise ValueError(f"invalid interpolation in {text!r}")
            name, at = name_match.group(), name_match.end()
            if text.startswith("}", at):
                yield name, None, ""
                pos = at + 1
                continue
            operator = next((op for op in _OPERATORS if text.startswith(op, at)), None)
            if operator is None:
                raise ValueError(f"invalid interpolation of {name} in {text!r}")
            end = _closing_brace(text, at + len(operator))
            word = text[at + len(operator) : end]
            yield name, operator, word
            yield from interpolations(word)
            pos = end + 1
        else:
            name_match = _NAME.match(text, dollar + 1)
            if name_match is None:
                raise ValueError(f"lone '$' in {text!r}: write '$$'")
            yield name_match.group(), None, ""
            pos = name_match.end()


def _closing_brace(text: str, start: int) -> int:
    depth, pos = 1, start
    while pos < len(text):
        if text.startswith("$$", pos):
            pos += 2
            continue
        if text.startswith("${", pos):
            depth, pos = depth + 1, pos + 2
            continue
        if text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    raise ValueError(f"unclosed '${{' in {text!r}")


def string_values(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, string) for every string value (mapping keys are not interpolated)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from string_values(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from string_values(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def route_strings(berth: dict) -> Iterator[tuple[str, str]]:
    for name, settings in (berth.get("services") or {}).items():
        for index, route in enumerate((settings or {}).get("routes") or []):
            for key in ("hostname", "path"):
                if isinstance(route.get(key), str):
                    yield f"berth.yml: services.{name}.routes[{index}].{key}", route[key]


def check_variable_usage(compose: dict, berth: dict) -> list[str]:
    questions = {q["variable"]: q for q in berth.get("questions") or []}
    used: set[str] = set()
    problems = []
    places = [(f"docker-compose.yml: {p}", s) for p, s in string_values(compose)]
    for where, text in [*places, *route_strings(berth)]:
        try:
            found = list(interpolations(text))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        for name, operator, word in found:
            used.add(name)
            problems += _usage_problems(where, name, operator, word, questions)
    for question in questions.values():
        used.update((question.get("show_if") or {}).keys())
    problems += [
        f"question {name}: variable {name!r} is not used in docker-compose.yml or berth.yml"
        for name in questions
        if name not in used
    ]
    return problems


def _usage_problems(
    where: str, name: str, operator: str | None, word: str, questions: dict
) -> list[str]:
    question = questions.get(name)
    if question is None:
        if name in BUILTIN_VARIABLES or operator in (":-", "-"):
            return []
        return [f"{where}: variable {name!r} is neither a question nor given a default"]
    problems = []
    if "show_if" in question and operator in (":?", "?"):
        problems.append(
            f"{where}: {name} may be hidden (show_if), so it cannot be required with {operator}"
        )
    if operator == ":-" and "default" in question and word != as_text(question["default"]):
        problems.append(
            f"{where}: ${{{name}:-{word}}} differs from the question's default "
            f"{question['default']!r}"
        )
    return problems


# ---------------------------------------------------------------------------------------
# Compose: forbidden keys and built-in conventions
# ---------------------------------------------------------------------------------------

FORBIDDEN_SERVICE_KEYS = (
    "privileged", "cap_add", "devices", "device_cgroup_rules", "network_mode", "pid", "ipc",
    "uts", "userns_mode", "volumes_from", "security_opt", "sysctls", "cgroup_parent",
    "cgroupns_mode", "runtime", "build", "container_name", "hostname", "configs", "secrets",
    "tmpfs", "ulimits", "env_file", "extends",
)  # fmt: skip
SOCKETS = ("docker.sock", "containerd.sock")


def forbidden_usage(compose: dict) -> list[str]:
    problems = []
    for name, spec in compose.get("services", {}).items():
        problems += [f"{name}: uses {k}" for k in FORBIDDEN_SERVICE_KEYS if k in spec]
        for index, mount in enumerate(spec.get("volumes") or []):
            problems += [f"{name}: volumes[{index}]: {p}" for p in _mount_problems(mount)]
        labels = spec.get("labels") or {}
        keys = labels if isinstance(labels, dict) else [str(x).split("=")[0] for x in labels]
        problems += [
            f"{name}: label {k} is in Berth's namespace"
            for k in keys
            if str(k).startswith("io.berth.")
        ]
    for _path, text in string_values(compose):
        if any(socket in text for socket in SOCKETS):
            problems.append(f"mentions the engine socket: {text!r}")
    for kind in ("volumes", "networks"):
        for key, spec in (compose.get(kind) or {}).items():
            spec = spec or {}
            problems += [
                f"{kind}.{key}: uses {k}"
                for k in ("external", "name", "driver", "driver_opts")
                if k in spec
            ]
    return problems


def _mount_problems(mount: Any) -> list[str]:
    if isinstance(mount, dict):
        if mount.get("type", "volume") != "volume":
            return [f"a {mount.get('type')} mount (only named volumes)"]
        return (
            []
            if _is_volume_name(str(mount.get("source", "")))
            else ["the source is not a named volume"]
        )
    source, _, _ = str(mount).partition(":")
    if ":" not in str(mount):
        return ["an anonymous volume (name it)"]
    return [] if _is_volume_name(source) else [f"bind mount of host path {source!r}"]


def _is_volume_name(source: str) -> bool:
    return bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", source))


def convention_problems(compose: dict, berth: dict) -> list[str]:
    settings = berth.get("services") or {}
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, spec in compose.get("services", {}).items():
        image = spec["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image} is not pinned to a version tag")
        if "healthcheck" not in spec and "health_check" not in (settings.get(name) or {}):
            problems.append(f"{name}: no health check (healthcheck or berth.yml health_check)")
        if spec.get("restart") != "unless-stopped":
            problems.append(f"{name}: restart should be unless-stopped")
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        problems += [
            f"{name}: no deploy.resources.limits.{k}" for k in ("cpus", "memory") if k not in limits
        ]
        for port in spec.get("ports") or []:
            problems += [f"{name}: {p}" for p in _port_problems(port)]
        for mount in spec.get("volumes") or []:
            source = mount.get("source") if isinstance(mount, dict) else str(mount).split(":")[0]
            if source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared at the top level")
    return problems


def _port_problems(port: Any) -> list[str]:
    if isinstance(port, dict):
        return ["publishes on a host address: leave host_ip to Berth"] if "host_ip" in port else []
    text = str(port)
    if text.startswith("${BIND_IP:-127.0.0.1}:"):
        return []
    if _without_interpolations(text).count(":") >= 2:
        return [f"port {text!r} names a host address: leave it to Berth"]
    return []


def _without_interpolations(text: str) -> str:
    """``text`` with each ``${...}`` replaced by ``X``, to look at its shape."""
    out, pos = [], 0
    while (start := text.find("${", pos)) >= 0:
        out.append(text[pos:start] + "X")
        pos = _closing_brace(text, start + 2) + 1
    return "".join(out) + text[pos:]


# ---------------------------------------------------------------------------------------
# Upgrades and migrations
# ---------------------------------------------------------------------------------------


def check_upgrades(
    name: str,
    berth: dict,
    variables: dict[str, dict],
    older: dict[str, dict[str, dict]],
    migrations: dict[str, list],
) -> list[str]:
    """upgrade_from points at older versions and no answer of a source is silently lost.

    ``older`` maps each older version to its questions; ``migrations`` maps every version
    of the template to its migrations list.
    """
    problems = [
        f"migrations[{i}]: {p}"
        for i, p in _migration_problems(berth.get("migrations") or [], variables)
    ]
    sources = set()
    for index, item in enumerate(berth.get("upgrade_from") or []):
        problem = range_problem(item)
        if problem is None and SEMVER.fullmatch(item) and item not in older:
            problem = f"version {item} does not exist or is not older than {name}"
        matched = {v for v in older if problem is None and range_matches(item, v)}
        if problem is None and not matched:
            problem = f"{item!r} matches no older version"
        if problem:
            problems.append(f"upgrade_from[{index}]: {problem}")
        sources |= matched
    for source in sorted(sources, key=semver_key):
        answers = set(older[source])
        for version in sorted(migrations, key=semver_key):
            if semver_key(source) < semver_key(version) <= semver_key(name):
                answers = _migrate(answers, migrations[version])
        problems += [
            f"upgrade_from: answers to {lost} (a question of {source}) would be lost: "
            "add a rename or drop migration"
            for lost in sorted(answers - set(variables))
        ]
    return problems


def _migration_problems(items: list, variables: dict[str, dict]) -> Iterator[tuple[int, str]]:
    for index, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            yield index, "each migration has exactly one key: rename, drop or set"
            continue
        ((kind, body),) = item.items()
        if kind == "rename":
            if not isinstance(body, dict) or set(body) != {"from", "to"}:
                yield index, "rename needs {from: OLD, to: NEW}"
                continue
            if body["to"] not in variables:
                yield index, f"rename: 'to' variable {body['to']} is not a question of this version"
            if body["from"] in variables:
                yield (
                    index,
                    f"rename: 'from' variable {body['from']} is still a question of this version",
                )
        elif kind == "drop":
            if not isinstance(body, str) or body in variables:
                yield (
                    index,
                    f"drop: {body!r} must be a variable that is not a question of this version",
                )
        elif kind == "set":
            yield from ((index, p) for p in _set_problems(body, variables))
        else:
            yield index, f"unknown migration {kind!r}"


def _set_problems(body: Any, variables: dict[str, dict]) -> Iterator[str]:
    if not isinstance(body, dict) or not body:
        yield "set needs {VARIABLE: value}"
        return
    for variable, value in body.items():
        question = variables.get(variable)
        if question is None:
            yield f"set: {variable} is not a question of this version"
        elif question["type"] in ("password", "secret"):
            yield f"set: {variable} is a {question['type']}: it cannot be set by a migration"
        elif errors := answer_errors(question, value, strict=True):
            yield f"set: {variable}: {' '.join(errors)}"


def _migrate(answers: set[str], items: list) -> set[str]:
    answers = set(answers)
    for item in items:
        ((kind, body),) = item.items()
        if kind == "rename" and body["from"] in answers:
            answers = (answers - {body["from"]}) | {body["to"]}
        elif kind == "drop":
            answers.discard(body)
        elif kind == "set":
            answers |= set(body)
    return answers
