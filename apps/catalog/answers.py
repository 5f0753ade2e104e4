"""Answers to a version's questions: validated, completed, migrated across versions.

The deploy form, the API and the upgrade path all call `resolve_answers`, so a user
sees the same message for the same mistake wherever they made it. Generated passwords
are made once: given the stack's previous answers, a password already there is kept,
so a redeploy or an upgrade never locks an application out of its own database.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError

from apps.catalog.questions import Question, VersionConfig, answer_problem, coerce, config_of
from apps.catalog.versions import version_key

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32
REQUIRED_MESSAGE = "This answer is required."
UNKNOWN_MESSAGE = "Not a question of this template version."


def generate_password(question: Question | None = None) -> str:
    """32 characters from A-Z a-z 0-9 (`min` if longer, at most `max`), as the README says."""
    length = PASSWORD_LENGTH
    if question is not None:
        length = max(length, question.min or 0)
        length = min(length, question.max) if question.max is not None else length
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


class _Resolver:
    """One resolution: raw answers + previous answers + defaults -> final values."""

    def __init__(
        self, config: VersionConfig, answers: Mapping[str, Any], previous: Mapping
    ) -> None:
        self.config = config
        self.answers = answers
        self.previous = previous
        self.by_name = {q.variable: q for q in config.questions}

    def raw(self, question: Question) -> Any:
        """What counts as the answer before checks: given, else kept, else the default."""
        name = question.variable
        value = self.answers.get(name)
        # Absent means "as before"; a blank secret too (forms never echo them back).
        keep = name not in self.answers or (question.is_secret and _blank(value))
        if keep and not _blank(self.previous.get(name)):
            return self.previous[name]
        if _blank(value) and question.default is not None:
            return question.default
        return value

    def value_of(self, question: Question) -> Any:
        """The normalized answer as show_if compares it (None when invalid)."""
        raw = self.raw(question)
        if _blank(raw):
            return False if question.type == "bool" else ""
        value, problem = coerce(question, raw)
        return None if problem else value

    def shown(self, question: Question) -> bool:
        """show_if: every named (earlier) question is shown and has one of the values."""
        for name, wanted in question.show_if.items():
            other = self.by_name.get(name)
            if other is None or not self.shown(other) or self.value_of(other) not in wanted:
                return False
        return True

    def resolve(self) -> dict[str, Any]:
        errors: dict[str, str] = {
            name: UNKNOWN_MESSAGE for name in self.answers if name not in self.by_name
        }
        result: dict[str, Any] = {}
        for question in self.config.questions:
            value, error = self.one(question)
            if error:
                errors[question.variable] = error
            elif value is not None:
                result[question.variable] = value
        if errors:
            raise ValidationError(errors)
        return result

    def one(self, question: Question) -> tuple[Any, str]:
        if not self.shown(question):
            # Hidden: not asked, not checked; a stored answer (a password) is kept.
            return self.previous.get(question.variable), ""
        raw = self.raw(question)
        if _blank(raw):
            if question.type == "bool":
                return False, ""
            if question.required:
                return None, REQUIRED_MESSAGE
            if question.type == "password":
                return generate_password(question), ""
            return "", ""
        problem = answer_problem(question, raw)
        return (None, problem) if problem else (coerce(question, raw)[0], "")


def resolve_answers(
    version: Any, answers: Mapping[str, Any] | None, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check `answers` against `version`'s questions and complete them.

    Returns the answers to store: normalized values (ints as ints, bools as bools,
    hostnames lower case) and generated passwords. Raises
    ValidationError({variable: message}) listing every bad answer, unknown variables
    included. `previous` is the stack's stored answers: an absent answer keeps its
    previous value and an empty password or secret keeps the stored one, so a generated
    password is generated once and never again.
    """
    if answers is not None and not isinstance(answers, Mapping):
        raise ValidationError({"answers": "Send the answers as an object of variable: value."})
    config = config_of(version)
    return _Resolver(config, dict(answers or {}), dict(previous or {})).resolve()


def hidden_variables(version: Any, answers: Mapping[str, Any]) -> set[str]:
    """Questions hidden by show_if for these answers: unset during interpolation."""
    resolver = _Resolver(config_of(version), dict(answers or {}), {})
    return {q.variable for q in resolver.config.questions if not resolver.shown(q)}


def interpolation_values(version: Any, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a compose file is interpolated with: answers minus hidden ones."""
    hidden = hidden_variables(version, answers)
    return {k: v for k, v in (answers or {}).items() if k not in hidden}


def sample_answers(version: Any) -> dict[str, Any]:
    """A valid value for every question, to validate a compose file at publication.

    Defaults where given; otherwise a sample of the right type, so `${VAR:?message}`
    passes and ports and numbers parse.
    """
    return {
        q.variable: q.default if q.default is not None else _sample(q)
        for q in config_of(version).questions
    }


def _sample(question: Question) -> Any:
    if question.type == "int":
        low = question.min if question.min is not None else 1
        return low if question.max is None or low <= question.max else question.max
    if question.type == "bool":
        return False
    if question.type == "enum":
        return question.options[0]
    if question.type == "hostname":
        return "app.example.test"
    if question.type == "password":
        return generate_password(question)
    size = max(question.min or 0, 12)
    return ("x" * size)[: question.max if question.max is not None else size]


# --- across versions -------------------------------------------------------------------------


def _versions_between(from_version: Any, to_version: Any, versions: Iterable | None) -> list:
    """Versions newer than the source and not newer than the target, in version order."""
    if versions is None:
        template = getattr(to_version, "template", None)
        versions = list(template.versions.all()) if hasattr(template, "versions") else []
    versions = [v for v in versions if getattr(v, "version", None) != to_version.version]
    if getattr(to_version, "review", None) == "approved":
        # The way to a reviewed version passes only reviewed versions: the migrations of
        # one waiting for (or refused by) an admin never touch another tenant's answers.
        versions = [v for v in versions if getattr(v, "review", "approved") == "approved"]
    low, high = version_key(from_version), version_key(to_version)
    between = [v for v in versions if low < version_key(v) < high]
    return sorted(between, key=version_key) + [to_version]


def apply_migrations(config: VersionConfig, answers: dict[str, Any]) -> dict[str, Any]:
    """One version's migrations, in list order, on a copy of the answers."""
    result = dict(answers)
    for step in config.migrations:
        if step.op == "rename" and step.variable in result:
            result[step.to] = result.pop(step.variable)
        elif step.op == "drop":
            result.pop(step.variable, None)
        elif step.op == "set":
            result[step.variable] = step.value
    return result


def migrate_answers(
    from_version: Any,
    to_version: Any,
    answers: Mapping[str, Any],
    versions: Iterable | None = None,
) -> dict[str, Any]:
    """A stack's answers carried from `from_version` to `to_version`.

    The migrations of every version newer than the source and not newer than the target
    are applied in version order (`versions` lists the template's versions; by default
    they are read from `to_version.template`). rename replaces any answer of the new
    name, drop removes, set replaces. Answers the target does not ask are dropped, so
    the result passes `resolve_answers(to_version, ..., previous=...)`.
    """
    result = dict(answers or {})
    for version in _versions_between(from_version, to_version, versions):
        result = apply_migrations(config_of(version), result)
    asked = set(config_of(to_version).variables)
    return {name: value for name, value in result.items() if name in asked}


def new_questions(
    from_version: Any,
    to_version: Any,
    answers: Mapping[str, Any] | None = None,
    versions: Iterable | None = None,
) -> list[Question]:
    """The target's questions an upgrade still has to ask: those without a carried answer.

    Without `answers`, the source version's variables stand for them.
    """
    if answers is None:
        answers = dict.fromkeys(config_of(from_version).variables, "")
    carried = migrate_answers(from_version, to_version, answers, versions)
    return [q for q in config_of(to_version).questions if q.variable not in carried]
