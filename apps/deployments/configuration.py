"""A stack's current answers as the stack page shows them, and revealing a secret one.

Secret answers (password and secret questions, and variables whose name or value says
so) are never part of the page: the card shows a mask, and a member reveals one answer
at a time through `reveal_answer`, which records who saw it. Viewers never see them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from apps.activity.services import record_event
from apps.catalog.answers import hidden_variables
from apps.catalog.questions import config_of, secret_names
from apps.compose.errors import ComposeError
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments.models import Stack
from apps.deployments.revisions import MASK, is_secret_name

_AT_LINE = re.compile(r"\bline (\d+)\b")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class AnswerRow:
    """One answer on the Configuration card; `shown` is what the page may print."""

    variable: str
    label: str
    secret: bool
    shown: str
    used: bool = True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _secret_variables(stack: Stack) -> set[str]:
    """Variables whose values the card masks (the question types, then the names)."""
    names = secret_names(stack.template_version, stack.answers)
    return {name for name in stack.answers or {} if is_secret_name(name, names)} | names


def answer_rows(stack: Stack) -> list[AnswerRow]:
    """Every question of the stack's template with its answer (a compose stack: its
    variables), secret values replaced by the mask."""
    answers = dict(stack.answers or {})
    secret = _secret_variables(stack)
    version = stack.template_version
    if version is None:
        names = sorted(answers)
        labels = {name: name for name in names}
        hidden: set[str] = set()
    else:
        questions = config_of(version).questions
        names = [q.variable for q in questions]
        labels = {q.variable: q.label or q.variable for q in questions}
        hidden = hidden_variables(version, answers)
    rows = []
    for name in names:
        value = _text(answers.get(name))
        is_secret = name in secret
        shown = (MASK if value else "") if is_secret else value
        rows.append(AnswerRow(name, labels[name], is_secret, shown, name not in hidden))
    return rows


def reveal_answer(actor: Any, stack: Stack, variable: str) -> str:
    """The stored value of one secret answer, for a member or more; recorded as an event
    ("answers revealed") so the tenant can tell who saw which secret, and when."""
    require_role(actor, stack.tenant, Role.MEMBER)
    row = next((r for r in answer_rows(stack) if r.variable == variable), None)
    if row is None or not row.secret:
        raise ValidationError({"name": "No secret answer of that name on this stack."})
    record_event(
        "stack.answers_revealed",
        actor=actor,
        tenant=stack.tenant,
        obj=stack,
        message=f"Answers revealed: {row.label} ({variable}) of {stack.name}",
        data={"variable": variable},
    )
    return _text((stack.answers or {}).get(variable))


# --- where a compose problem is -----------------------------------------------------------------


def _path_parts(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _PATH_PART.findall(path or "")]


def _line_of_path(root: Any, path: str) -> int | None:
    """The 1-based line of the deepest node of `path` ("services.web.ports[0]") found."""
    node, line = root, None
    for part in _path_parts(path):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((pair for pair in node.value if pair[0].value == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def problem_lines(text: str, error: BaseException | None) -> list[tuple[int, str]]:
    """(line, message) for each problem of a refused compose file that has a place in
    it: the YAML parser's own "at line N", else the line of the problem's path."""
    while error is not None and not isinstance(error, ComposeError):
        error = error.__cause__
    if error is None:
        return []
    root = None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        root = None
    found = []
    for problem in error.problems:
        match = _AT_LINE.search(problem.message)
        line = int(match.group(1)) if match else None
        if line is None and root is not None and problem.path:
            line = _line_of_path(root, problem.path)
        if line is not None:
            found.append((line, problem.message))
    return found
