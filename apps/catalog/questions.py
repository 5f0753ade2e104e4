"""berth.yml, read and checked: questions, per-service settings, upgrade rules, migrations.

Pure Python (no database): the loader, the publishing service, the deploy form and the
API all read a version's berth.yml through `parse_berth_yml`, so a template is judged
the same way wherever it comes from (catalog/README.md is the specification). Every
problem is one line naming the file and the location ("redis/7.4.1/berth.yml:
questions[2] (MAXMEMORY): ...") and all problems are reported at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from apps.catalog import semver
from apps.compose import ComposeError
from apps.compose.errors import FieldError
from apps.compose.values import duration
from apps.compose.yaml_safe import safe_load

QUESTION_TYPES = ("string", "int", "bool", "enum", "password", "secret", "hostname", "multiline")
TEXT_TYPES = ("string", "password", "secret", "hostname", "multiline")
SECRET_TYPES = ("password", "secret")
# Names of answers a compose file's author would not want published: a stack deployed
# from a bare compose file has no question types, so its variables are judged by name
# (a word of it, or a part of a run-together one) and by value (a URL with credentials).
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "SECRETS", "TOKEN", "KEY", "APIKEY"}
    | {"PRIVATE", "CREDENTIAL", "CREDENTIALS", "AUTH", "SALT", "PASSPHRASE", "DSN", "CERT"}
)
SECRET_PARTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "PASSPHRASE", "CREDENTIAL")
_URL_CREDENTIALS = re.compile(r"://[^/@\s:]*:[^/@\s]*@")
PATTERN_TYPES = ("string", "password", "secret", "hostname")
VARIABLE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
QUESTION_KEYS = (
    "variable",
    "label",
    "description",
    "type",
    "required",
    "default",
    "min",
    "max",
    "pattern",
    "options",
    "show_if",
    "group",
)
TOP_KEYS = ("min_berth_version", "questions", "services", "upgrade_from", "migrations")
MIGRATION_OPS = ("rename", "drop", "set")
MAX_QUESTIONS = 100


class BerthConfigError(ValueError):
    """A berth.yml was refused; `problems` holds one line per thing wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def __reduce__(self):  # Celery pickles errors: keep the list of problems
        return (type(self), (list(self.problems),))


def looks_secret(name: str, value: Any = None) -> bool:
    """Whether an untyped answer (a compose stack's variable) must be treated as a secret."""
    upper = str(name).upper()
    words = set(re.split(r"[^A-Z0-9]+", upper))
    if words & SECRET_WORDS or any(part in upper for part in SECRET_PARTS):
        return True
    return bool(_URL_CREDENTIALS.search(str(value or "")))


def _stored_questions(version: Any) -> list[Mapping]:
    """The question dicts a TemplateVersion stores (an old row may say `name`)."""
    if version is None:
        return []
    return [q for q in version.questions or [] if isinstance(q, Mapping)]


def question_names(version: Any) -> set[str]:
    """The variables a version asks about (none without a version)."""
    return {str(q.get("variable") or q.get("name")) for q in _stored_questions(version)}


def secret_names(version: Any, answers: Mapping | None = None) -> set[str]:
    """Variables masked wherever they are shown (the stack page, the API, summaries,
    diffs, previews, inspect): password and secret questions, plus any answer that
    `looks_secret` by its name or its value. One rule for every place, so no page shows
    in the clear what another masks."""
    typed = {
        str(q.get("variable") or q.get("name"))
        for q in _stored_questions(version)
        if q.get("type") in SECRET_TYPES
    }
    return typed | {str(k) for k, v in (answers or {}).items() if looks_secret(str(k), v)}


def secret_values(version: Any, answers: Mapping | None) -> list[str]:
    """The non-empty secret answers (`secret_names`), to be masked wherever shown."""
    names = secret_names(version, answers)
    return [str(v) for k, v in (answers or {}).items() if k in names and v]


@dataclass(frozen=True)
class Question:
    """One question of a version; `variable` is the name the compose file interpolates."""

    variable: str
    label: str
    type: str = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    min: int | None = None
    max: int | None = None
    pattern: str = ""
    options: tuple[str, ...] = ()
    show_if: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    group: str = ""

    @property
    def is_secret(self) -> bool:
        return self.type in SECRET_TYPES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = list(self.options)
        data["show_if"] = {k: list(v) for k, v in self.show_if.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        """Rebuild from `to_dict` output (what TemplateVersion.questions stores)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["options"] = tuple(values.get("options") or ())
        show_if = values.get("show_if") or {}
        values["show_if"] = {
            k: tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in show_if.items()
        }
        return cls(**values)


@dataclass(frozen=True)
class Migration:
    """One answer migration: rename `variable` to `to`, drop it, or set it to `value`."""

    op: str
    variable: str
    to: str = ""
    value: Any = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionConfig:
    """A version's berth.yml, validated and normalised."""

    version: str = ""
    questions: tuple[Question, ...] = ()
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    upgrade_from: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = ()
    min_berth_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in TemplateVersion.config (the version string lives on the row)."""
        return {
            "questions": [q.to_dict() for q in self.questions],
            "services": self.services,
            "upgrade_from": list(self.upgrade_from),
            "migrations": [m.to_dict() for m in self.migrations],
            "min_berth_version": self.min_berth_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], version: str = "") -> VersionConfig:
        upgrade_from = data.get("upgrade_from") or ()
        if isinstance(upgrade_from, str):
            upgrade_from = (upgrade_from,)
        return cls(
            version=version,
            questions=tuple(Question.from_dict(q) for q in data.get("questions") or ()),
            services=dict(data.get("services") or {}),
            upgrade_from=tuple(str(u) for u in upgrade_from),
            migrations=tuple(Migration(**m) for m in data.get("migrations") or ()),
            min_berth_version=str(data.get("min_berth_version") or ""),
        )

    @property
    def variables(self) -> list[str]:
        return [q.variable for q in self.questions]

    def question(self, variable: str) -> Question | None:
        return next((q for q in self.questions if q.variable == variable), None)


def config_of(version: Any) -> VersionConfig:
    """A VersionConfig from a VersionConfig or anything shaped like a TemplateVersion."""
    if isinstance(version, VersionConfig):
        return version
    config = dict(getattr(version, "config", None) or {})
    if getattr(version, "questions", None):
        config["questions"] = version.questions
    return VersionConfig.from_dict(config, str(getattr(version, "version", "")))


# --- checking one answer (the messages of catalog/README.md, "Answers") ---------------------

HOSTNAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MULTILINE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_ANSWER_LENGTH = 65536


def _expected(question: Question) -> str:
    if question.type == "int":
        return "Expected a whole number."
    if question.type == "bool":
        return "Expected true or false."
    return "Expected a string."


def coerce(question: Question, value: Any) -> tuple[Any, str]:
    """(normalized value, "") or (None, message): the answer's type and form.

    Ints become ints, bools bools, hostnames lower case, multiline text gets LF line
    ends; anything else is returned as given.
    """
    if question.type == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, ""
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
            return int(value.strip()), ""
        return None, ("Enter a whole number." if isinstance(value, str) else _expected(question))
    if question.type == "bool":
        if isinstance(value, bool):
            return value, ""
        word = value.strip().lower() if isinstance(value, str) else None
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS, ""
        return None, ("Enter true or false." if isinstance(value, str) else _expected(question))
    if not isinstance(value, str):
        return None, _expected(question)
    if question.type == "hostname":
        return value.strip().lower(), ""
    if question.type == "multiline":
        return value.replace("\r\n", "\n"), ""
    return value, ""


def answer_problem(question: Question, value: Any) -> str:
    """Why `value` is not a valid answer to `question`, or "" when it is.

    The one place answer rules live: defaults in berth.yml, the deploy form and the API
    all get these exact messages.
    """
    coerced, problem = coerce(question, value)
    if problem:
        return problem
    if question.type == "int":
        return _check_int(question, coerced)
    if question.type == "bool":
        return ""
    if question.type == "enum":
        return "" if coerced in question.options else _choose(question)
    return _check_text(question, coerced)


def _choose(question: Question) -> str:
    return f"Choose one of: {', '.join(question.options)}."


def _check_int(question: Question, number: int) -> str:
    if question.min is not None and number < question.min:
        return f"Must be at least {question.min}."
    if question.max is not None and number > question.max:
        return f"Must be at most {question.max}."
    return ""


def _check_text(question: Question, text: str) -> str:
    if len(text) > MAX_ANSWER_LENGTH:
        return f"Must be at most {MAX_ANSWER_LENGTH} characters."
    control = _MULTILINE_CONTROL if question.type == "multiline" else _CONTROL
    if control.search(text):
        if question.type == "multiline":
            return "Must not contain control characters other than line breaks and tabs."
        return "Must be a single line of text."
    if question.type == "hostname" and not is_hostname(text):
        return "Enter a valid hostname (letters, digits and hyphens, separated by dots)."
    if question.min is not None and len(text) < question.min:
        return f"Must be at least {question.min} characters."
    if question.max is not None and len(text) > question.max:
        return f"Must be at most {question.max} characters."
    if question.pattern and not re.fullmatch(question.pattern, text):
        return f"Must match the pattern {question.pattern}."
    return ""


def is_hostname(text: str) -> bool:
    """A DNS name as the README defines it (lower case; IP addresses are not names)."""
    if not text or len(text) > 253 or text.endswith("."):
        return False
    try:
        ipaddress.ip_address(text)
        return False
    except ValueError:
        pass
    return all(HOSTNAME_LABEL.match(label) for label in text.split("."))


# --- parsing ---------------------------------------------------------------------------------


class Problems:
    """Collects "<source>: <location>: <message>" lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        prefix = f"{self.source}: " if self.source else ""
        self.items.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")


def parse_berth_yml(
    text: str | bytes, source: str = "berth.yml", version: str = ""
) -> VersionConfig:
    """berth.yml text -> VersionConfig, or BerthConfigError naming `source` and each field.

    An empty file is a version without questions. The YAML is read with the compose
    loader's limits (no alias bombs, bounded size and depth): it is untrusted input too.
    """
    if not (text or "").strip():
        return VersionConfig(version=version)
    try:
        data = safe_load(text)
    except ComposeError as exc:
        raise BerthConfigError([f"{source}: {m}" for m in exc.messages]) from None
    if data is None:
        return VersionConfig(version=version)
    return parse_berth_data(data, source, version)


def parse_berth_data(data: Any, source: str = "berth.yml", version: str = "") -> VersionConfig:
    """The already-loaded mapping of a berth.yml -> VersionConfig (see parse_berth_yml)."""
    problems = Problems(source)
    if not isinstance(data, Mapping):
        problems.add("", "the file must be a mapping (questions:, services:, ...)")
        raise BerthConfigError(problems.items)
    for key in data:
        if key not in TOP_KEYS:
            problems.add(str(key), f"unknown key; use one of {', '.join(TOP_KEYS)}")
    questions = _questions(data.get("questions"), problems)
    config = VersionConfig(
        version=version,
        questions=questions,
        services=_services(data.get("services"), problems),
        upgrade_from=_upgrade_from(data.get("upgrade_from"), problems),
        migrations=_migrations(data.get("migrations"), questions, problems),
        min_berth_version=_min_version(data.get("min_berth_version"), problems),
    )
    if problems.items:
        raise BerthConfigError(problems.items)
    return config


def _min_version(raw: Any, problems: Problems) -> str:
    if raw is None:
        return ""
    if not semver.is_version(str(raw)):
        problems.add("min_berth_version", f"{raw!r} is not a version like 0.1.0")
        return ""
    return str(raw)


def _one_line(value: Any, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high and not _CONTROL.search(value)


def _questions(raw: Any, problems: Problems) -> tuple[Question, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("questions", "must be a list of questions")
        return ()
    if len(raw) > MAX_QUESTIONS:
        problems.add("questions", f"at most {MAX_QUESTIONS} questions")
    questions: list[Question] = []
    for index, item in enumerate(raw):
        question = _question(item, index, questions, problems)
        if question is not None:
            questions.append(question)
    return tuple(questions)


def _question(
    item: Any, index: int, earlier: list[Question], problems: Problems
) -> Question | None:
    variable = item.get("variable") if isinstance(item, Mapping) else None
    where = f"questions[{index}]" + (f" ({variable})" if isinstance(variable, str) else "")
    if not isinstance(item, Mapping):
        problems.add(where, "must be a mapping with variable, label, type...")
        return None
    before = len(problems.items)
    _question_keys(item, where, earlier, problems)
    if len(problems.items) > before:
        return None
    question = Question(
        variable=item["variable"],
        label=item["label"],
        type=item["type"],
        description=item.get("description") or "",
        required=item.get("required", False),
        default=item.get("default"),
        min=item.get("min"),
        max=item.get("max"),
        pattern=item.get("pattern") or "",
        options=tuple(item.get("options") or ()),
        show_if={},
        group=item.get("group") or "",
    )
    show_if = _show_if(item.get("show_if"), where, earlier, problems)
    _check_default(question, where, problems)
    if len(problems.items) > before:
        return None
    default = question.default
    if default is not None:
        default = coerce(question, default)[0]
    return Question(**{**question.__dict__, "show_if": show_if, "default": default})


def _question_keys(item: Mapping, where: str, earlier: list[Question], problems: Problems) -> None:
    """Keys, types and the keys each question type allows."""
    for key in item:
        if key not in QUESTION_KEYS:
            problems.add(where, f"unknown key {key!r}; use one of {', '.join(QUESTION_KEYS)}")
    variable, kind = item.get("variable"), item.get("type")
    if not isinstance(variable, str) or not VARIABLE_RE.match(variable):
        problems.add(where, "variable must match ^[A-Z][A-Z0-9_]{0,63}$ (like DB_PASSWORD)")
    elif variable.startswith("BERTH_"):
        problems.add(where, "variable: the prefix BERTH_ is reserved for Berth's own variables")
    elif any(q.variable == variable for q in earlier):
        problems.add(where, f"variable {variable} is asked twice")
    if not _one_line(item.get("label"), 1, 80):
        problems.add(where, "label is required: one line of 1 to 80 characters")
    description = item.get("description")
    if description is not None and not (isinstance(description, str) and len(description) <= 500):
        problems.add(where, "description must be text of at most 500 characters")
    if kind not in QUESTION_TYPES:
        problems.add(where, f"type {kind!r} is not one of {', '.join(QUESTION_TYPES)}")
        return
    if not isinstance(item.get("required", False), bool):
        problems.add(where, "required must be true or false")
    group = item.get("group")
    if group is not None and not _one_line(group, 1, 40):
        problems.add(where, "group must be one line of 1 to 40 characters")
    _type_keys(item, kind, where, problems)


def _type_keys(item: Mapping, kind: str, where: str, problems: Problems) -> None:
    if kind in SECRET_TYPES and "default" in item:
        problems.add(where, f"default is not allowed for {kind} questions")
    for key in ("min", "max"):
        value = item.get(key)
        if value is None:
            continue
        if kind in ("bool", "enum"):
            problems.add(where, f"{key} is not allowed for {kind} questions")
        elif isinstance(value, bool) or not isinstance(value, int):
            problems.add(where, f"{key} must be a whole number")
        elif kind != "int" and value < 0:
            problems.add(where, f"{key} is a length: 0 or more")
    low, high = item.get("min"), item.get("max")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.add(where, "min is greater than max")
    pattern = item.get("pattern")
    if pattern is not None:
        if kind not in PATTERN_TYPES:
            problems.add(where, f"pattern is not allowed for {kind} questions")
        elif not isinstance(pattern, str):
            problems.add(where, "pattern must be a string")
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.add(where, f"pattern does not compile: {exc}")
    _options(item.get("options"), kind, where, problems)


def _options(options: Any, kind: str, where: str, problems: Problems) -> None:
    if kind != "enum":
        if options is not None:
            problems.add(where, "options are only for enum questions")
        return
    if not isinstance(options, list) or not 1 <= len(options) <= 50:
        problems.add(where, "options: an enum needs a list of 1 to 50 options")
    elif not all(_one_line(o, 1, 100) for o in options):
        problems.add(
            where, "options must be strings of 1 to 100 characters (quote yes, no, numbers)"
        )
    elif len(set(options)) != len(options):
        problems.add(where, "options must be unique")


def _yaml_type_ok(question: Question, value: Any) -> bool:
    if question.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if question.type == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def _check_default(question: Question, where: str, problems: Problems) -> None:
    """A default must itself be a valid answer, of the question's YAML type."""
    default = question.default
    if default is None:
        return
    if not _yaml_type_ok(question, default):
        kind = {"int": "a whole number", "bool": "true or false"}.get(question.type, "a string")
        problems.add(
            where, f"default {default!r} must be {kind} (quote text YAML reads as another type)"
        )
        return
    message = answer_problem(question, default)
    if message:
        problems.add(where, f"default {default!r}: {message}")


def _show_if(
    raw: Any, where: str, earlier: list[Question], problems: Problems
) -> dict[str, tuple[Any, ...]]:
    """`{OTHER: value}` or `{OTHER: [a, b]}` (any of); OTHER asked earlier in the list."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        problems.add(where, "show_if must map earlier questions to the value(s) that show this one")
        return {}
    result = {}
    for name, wanted in raw.items():
        other = next((q for q in earlier if q.variable == name), None)
        if other is None:
            problems.add(where, f"show_if: {name} is not a question asked earlier in the list")
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        normalized = []
        for value in values:
            problem = answer_problem(other, value)
            if problem:
                problems.add(
                    where, f"show_if: {value!r} is not a valid answer to {name}: {problem}"
                )
            else:
                normalized.append(coerce(other, value)[0])
        result[str(name)] = tuple(normalized)
    return result


# --- services, upgrade_from, migrations ------------------------------------------------------

SERVICE_KEYS = ("scale", "health_check", "routes", "upgrade")
HEALTH_KEYS = ("test", "http", "tcp", "interval", "timeout", "start_period", "retries", "disable")
HTTP_PROBE_KEYS = ("port", "path", "expect_status")
TCP_PROBE_KEYS = ("port",)
ROUTE_KEYS = ("hostname", "path", "port")
ROUTE_PATH_MAX = 200
_ROUTE_PATH = re.compile(r"/[A-Za-z0-9._~/%-]*")


def route_path_problem(path: Any) -> str | None:
    """Why `path` cannot be a route's path prefix (or an HTTP check's path), or None.

    One rule for berth.yml, the routes API and the frontier: a plain URL path, compared
    by HAProxy as it is, with nothing that could mean something else in its
    configuration."""
    if not isinstance(path, str) or not path.startswith("/"):
        return "must start with /"
    if len(path) > ROUTE_PATH_MAX:
        return f"may have at most {ROUTE_PATH_MAX} characters"
    if not _ROUTE_PATH.fullmatch(path):
        return "may use only letters, digits and . _ ~ / % - (no spaces)"
    return None


def _written_path_problem(path: Any) -> str | None:
    """The rule for a path as written in berth.yml: one that interpolates an answer is
    judged after interpolation, at deploy."""
    if isinstance(path, str) and "$" in path:
        return None if path.startswith("/") else "must start with /"
    return route_path_problem(path)


UPGRADE_KEYS = (
    "strategy",
    "batch_size",
    "interval",
    "canary_weight",
    "order",
    "monitor",
    "failure_action",
)


def _is_duration(value: Any) -> bool:
    """A berth.yml duration: compose's reader, in the Compose specification's spelling."""
    try:
        duration(value, strict=True)
    except FieldError:
        return False
    return True


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _services(raw: Any, problems: Problems) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add("services", "must map compose service names to their settings")
        return {}
    result = {}
    for name, settings in raw.items():
        where = f"services.{name}"
        settings = settings if settings is not None else {}
        if not isinstance(settings, Mapping):
            problems.add(where, "must be a mapping (scale, health_check, routes, upgrade)")
            continue
        for key in settings:
            if key not in SERVICE_KEYS:
                problems.add(f"{where}.{key}", f"unknown key; use one of {', '.join(SERVICE_KEYS)}")
        if "scale" in settings and not _int_in(settings["scale"], 0, 100):
            problems.add(f"{where}.scale", "must be a whole number from 0 to 100")
        _health_check(settings.get("health_check"), f"{where}.health_check", problems)
        _routes(settings.get("routes"), f"{where}.routes", problems)
        _upgrade(settings.get("upgrade"), settings, f"{where}.upgrade", problems)
        result[str(name)] = dict(settings)
    return result


def _health_check(raw: Any, where: str, problems: Problems) -> None:
    """Compose's form (run by Docker in the container) or Berth's own probe (`http` or
    `tcp`, run by Berth against the container's address): one way of checking, never two."""
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a mapping like a compose healthcheck, or http: / tcp:")
        return
    for key, value in raw.items():
        _health_key(key, value, f"{where}.{key}", problems)
    ways = [key for key in ("test", "http", "tcp") if key in raw]
    if raw.get("disable") is True:
        ways.append("disable")
    if len(ways) > 1:
        problems.add(where, f"{' and '.join(ways)} cannot be set together: choose one")
    test = raw.get("test")
    ok = isinstance(test, str) or (
        isinstance(test, list)
        and test
        and all(isinstance(t, str) for t in test)
        and test[0] in ("CMD", "CMD-SHELL", "NONE")
    )
    if "test" in raw and not ok:
        problems.add(f"{where}.test", "a string, or a list starting with CMD, CMD-SHELL or NONE")
    if "http" in raw:
        _probe(raw["http"], f"{where}.http", HTTP_PROBE_KEYS, problems)
    if "tcp" in raw:
        _probe(raw["tcp"], f"{where}.tcp", TCP_PROBE_KEYS, problems)


def _health_key(key: Any, value: Any, where: str, problems: Problems) -> None:
    if key not in HEALTH_KEYS:
        problems.add(where, f"unknown key; use one of {', '.join(HEALTH_KEYS)}")
    elif key in ("interval", "timeout", "start_period") and not _is_duration(value):
        problems.add(where, f"{value!r} is not a duration like 5s or 1m30s")
    elif key == "retries" and not _int_in(value, 0, 1000):
        problems.add(where, "must be a whole number from 0 to 1000")
    elif key == "disable" and not isinstance(value, bool):
        problems.add(where, "must be true or false")


def _probe(raw: Any, where: str, keys: tuple[str, ...], problems: Problems) -> None:
    """`http: {port, path, expect_status}` or `tcp: {port}`: where Berth's probe knocks."""
    if not isinstance(raw, Mapping):
        problems.add(where, f"must be a mapping ({', '.join(keys)})")
        return
    for key in raw:
        if key not in keys:
            problems.add(f"{where}.{key}", f"unknown key; use one of {', '.join(keys)}")
    if not _int_in(raw.get("port"), 1, 65535):
        problems.add(f"{where}.port", "is required: the container port, 1 to 65535")
    problem = route_path_problem(raw.get("path", "/"))
    if "path" in keys and problem:
        problems.add(f"{where}.path", problem)
    if "expect_status" in raw and not _int_in(raw["expect_status"], 100, 599):
        problems.add(f"{where}.expect_status", "must be an HTTP status from 100 to 599")


def _routes(raw: Any, where: str, problems: Problems) -> None:
    if raw is None:
        return
    if not isinstance(raw, list) or len(raw) > 10:
        problems.add(where, "must be a list of at most 10 routes")
        return
    seen = set()
    for index, route in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(route, Mapping):
            problems.add(at, "must be a mapping with hostname, path and port")
            continue
        for key in route:
            if key not in ROUTE_KEYS:
                problems.add(f"{at}.{key}", f"unknown key; use one of {', '.join(ROUTE_KEYS)}")
        if not isinstance(route.get("hostname"), str):
            problems.add(f"{at}.hostname", "is required (it may interpolate an answer)")
        path = route.get("path", "/")
        problem = _written_path_problem(path)
        if problem:
            problems.add(f"{at}.path", problem)
        if not _int_in(route.get("port"), 1, 65535):
            problems.add(f"{at}.port", "is required: the container port, 1 to 65535")
        key = (route.get("hostname"), path)
        if key in seen:
            problems.add(at, "two routes share the same hostname and path")
        seen.add(key)


def _upgrade(raw: Any, settings: Mapping, where: str, problems: Problems) -> None:
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        problems.add(where, f"must be a mapping ({', '.join(UPGRADE_KEYS)})")
        return
    for key in raw:
        if key not in UPGRADE_KEYS:
            problems.add(f"{where}.{key}", f"unknown key; use one of {', '.join(UPGRADE_KEYS)}")
    strategy = raw.get("strategy", "rolling")
    if strategy not in ("rolling", "canary"):
        problems.add(f"{where}.strategy", "must be rolling or canary")
    if "batch_size" in raw and not _int_in(raw["batch_size"], 1, 100):
        problems.add(f"{where}.batch_size", "must be a whole number from 1 to 100")
    _upgrade_rollout(raw, where, problems)
    if "canary_weight" in raw:
        if strategy != "canary":
            problems.add(f"{where}.canary_weight", "only with strategy: canary")
        elif not _int_in(raw["canary_weight"], 1, 99):
            problems.add(f"{where}.canary_weight", "must be a whole number from 1 to 99")
    if strategy == "canary" and not settings.get("routes"):
        problems.add(f"{where}.strategy", "a canary needs a route: add routes to this service")


def _upgrade_rollout(raw: Mapping, where: str, problems: Problems) -> None:
    """interval, monitor, order and failure_action of an `upgrade` mapping."""
    for key in ("interval", "monitor"):
        value = raw.get(key)
        if value is not None and not _is_duration(value):
            problems.add(f"{where}.{key}", f"{value!r} is not a duration like 30s")
    if raw.get("order", "start-first") not in ("start-first", "stop-first"):
        problems.add(f"{where}.order", "must be start-first or stop-first")
    if raw.get("failure_action", "rollback") not in ("rollback", "pause"):
        problems.add(f"{where}.failure_action", "must be rollback or pause")


def _upgrade_from(raw: Any, problems: Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("upgrade_from", "must be a list of versions or ranges")
        return ()
    result = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} is not a string")
            semver.check_range(item)
        except ValueError as exc:
            problems.add(f"upgrade_from[{index}]", f'{exc}; write 1.0.0, "*" or ">=1.0.0 <2.0.0"')
            continue
        result.append(item.strip())
    return tuple(result)


def _migrations(
    raw: Any, questions: tuple[Question, ...], problems: Problems
) -> tuple[Migration, ...]:
    """`rename: {from: OLD, to: NEW}`, `drop: VAR`, `set: {VAR: value, ...}`, in order."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("migrations", "must be a list of rename, drop or set steps")
        return ()
    by_name = {q.variable: q for q in questions}
    result: list[Migration] = []
    for index, step in enumerate(raw):
        where = f"migrations[{index}]"
        if not isinstance(step, Mapping) or len(step) != 1 or next(iter(step)) not in MIGRATION_OPS:
            problems.add(where, "each step has exactly one key: rename, drop or set")
            continue
        op, body = next(iter(step.items()))
        result += _MIGRATION_PARSERS[op](body, f"{where}.{op}", by_name, problems)
    return tuple(result)


def _rename(body: Any, where: str, by_name: dict, problems: Problems) -> list[Migration]:
    if not isinstance(body, Mapping) or set(body) != {"from", "to"}:
        problems.add(where, "write rename: {from: OLD, to: NEW}")
        return []
    old, new = body["from"], body["to"]
    if not isinstance(old, str) or not VARIABLE_RE.match(old) or old in by_name:
        problems.add(
            where,
            f"'from' variable {old} must be a variable that is not a question of this version",
        )
        return []
    if new not in by_name:
        problems.add(where, f"'to' variable {new} is not a question of this version")
        return []
    return [Migration("rename", old, to=new)]


def _drop(body: Any, where: str, by_name: dict, problems: Problems) -> list[Migration]:
    if not isinstance(body, str) or not VARIABLE_RE.match(body) or body in by_name:
        problems.add(where, f"{body!r} must be a variable that is not a question of this version")
        return []
    return [Migration("drop", body)]


def _set(body: Any, where: str, by_name: dict, problems: Problems) -> list[Migration]:
    if not isinstance(body, Mapping) or not body:
        problems.add(where, "write set: {VAR: value, ...}")
        return []
    steps = []
    for name, value in body.items():
        question = by_name.get(name)
        if question is None:
            problems.add(where, f"{name} is not a question of this version")
        elif question.is_secret:
            problems.add(where, f"{name} is a {question.type}: it cannot be set by a migration")
        elif answer_problem(question, value):
            problems.add(where, f"{name}: {value!r}: {answer_problem(question, value)}")
        else:
            steps.append(Migration("set", name, value=coerce(question, value)[0]))
    return steps


_MIGRATION_PARSERS = {"rename": _rename, "drop": _drop, "set": _set}


# --- writing ---------------------------------------------------------------------------------


def _question_source(question: Question) -> dict[str, Any]:
    data: dict[str, Any] = {
        "variable": question.variable,
        "label": question.label,
        "type": question.type,
    }
    for name in ("description", "required", "default", "min", "max", "pattern", "group"):
        value = getattr(question, name)
        if (value is not None) if name == "default" else value not in (None, "", False):
            data[name] = value
    if question.options:
        data["options"] = list(question.options)
    if question.show_if:
        data["show_if"] = {k: v[0] if len(v) == 1 else list(v) for k, v in question.show_if.items()}
    return data


def _migration_source(step: Migration) -> dict[str, Any]:
    if step.op == "rename":
        return {"rename": {"from": step.variable, "to": step.to}}
    if step.op == "set":
        return {"set": {step.variable: step.value}}
    return {"drop": step.variable}


def dump_berth_yml(config: VersionConfig) -> str:
    """berth.yml text for `config`, in the format authors write (parse_berth_yml reads it)."""
    import yaml

    data: dict[str, Any] = {}
    if config.questions:
        data["questions"] = [_question_source(q) for q in config.questions]
    if config.services:
        data["services"] = config.services
    if config.upgrade_from:
        data["upgrade_from"] = list(config.upgrade_from)
    if config.migrations:
        data["migrations"] = [_migration_source(m) for m in config.migrations]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if data else ""
