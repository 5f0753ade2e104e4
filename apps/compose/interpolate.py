"""Compose variable interpolation, applied to every string value before parsing.

Interpolating first means the parser and the policy only ever see final values: a
``privileged: ${P}`` or ``network_mode: ${NM:-host}`` is judged as ``true`` and ``host``,
so variables cannot smuggle anything past the policy. Mapping keys are not interpolated
(as in Compose), and a substituted value is never interpolated again.

Syntax: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}``, ``${VAR:+alt}``, ``${VAR+alt}``, and ``$$`` for a literal dollar.
Defaults, alternatives and messages may themselves contain interpolations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from apps.compose.errors import ComposeError, FieldError, Problem, problem_for
from apps.compose.limits import DEFAULT_LIMITS, Limits

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_MAX_NESTING = 8
_MAX_DEPTH = 64


def interpolate(
    tree: Any,
    variables: Mapping[str, Any],
    *,
    missing: set[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Return a copy of ``tree`` with every string value interpolated.

    Unset variables without a default become "" (as in Compose); their names are added to
    ``missing`` when given, so the caller can warn. Errors (bad syntax, a required variable
    without value) are collected for the whole tree and raised as one ComposeError. The
    total size of expanded strings is bounded: a small file referencing a large variable
    thousands of times must not turn into gigabytes.
    """
    env = {str(k): _as_text(v) for k, v in variables.items()}
    expander = _Expander(env, missing if missing is not None else set(), limits)
    result = expander.walk(tree, ())
    if expander.problems:
        raise ComposeError(expander.problems)
    return result


def _as_text(value: Any) -> str | None:
    """Answers may be typed (bool, int); Compose variables are strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Expander:
    """Walks the tree, expands strings, and remembers problems instead of stopping."""

    def __init__(self, env: dict[str, str | None], missing: set[str], limits: Limits) -> None:
        self.env = env
        self.missing = missing
        self.problems: list[Problem] = []
        self.budget = limits.max_interpolated

    def walk(self, node: Any, path: tuple[str | int, ...]) -> Any:
        if len(path) > _MAX_DEPTH:
            self.problems.append(problem_for(path, f"nesting deeper than {_MAX_DEPTH} levels"))
            return None
        if isinstance(node, dict):
            return {k: self.walk(v, (*path, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            try:
                return self._charged(self.expand(node, 0))
            except FieldError as exc:
                self.problems.append(problem_for(path, exc.message))
        return node

    def _charged(self, text: str) -> str:
        self.budget -= len(text)
        if self.budget < 0:
            raise ComposeError("interpolated values are too large in total")
        return text

    def expand(self, text: str, nesting: int) -> str:
        """Expand every ``$`` form in ``text``; ``nesting`` bounds defaults inside defaults."""
        if nesting > _MAX_NESTING:
            raise FieldError(f"interpolation nested deeper than {_MAX_NESTING} levels")
        out: list[str] = []
        for piece in scan(text):
            if isinstance(piece, str):
                out.append(piece)
            elif piece.operator:
                out.append(self._apply(piece.name, piece.operator, piece.word, nesting))
            else:
                out.append(self._lookup(piece.name))
        return "".join(out)

    def _lookup(self, name: str) -> str:
        value = self.env.get(name)
        if value is None:
            self.missing.add(name)
            return ""
        return value

    def _apply(self, name: str, operator: str, word: str, nesting: int) -> str:
        """The POSIX-shell meaning of each operator; ':' variants also treat "" as unset."""
        value = self.env.get(name)
        present = bool(value) if operator.startswith(":") else value is not None
        kind = operator[-1]
        if kind == "-":
            return value if present else self.expand(word, nesting + 1)
        if kind == "+":
            return self.expand(word, nesting + 1) if present else ""
        if present:
            return value
        message = self.expand(word, nesting + 1) if word else ""
        detail = f": {message}" if message else ""
        raise FieldError(f"required variable '{name}' is missing a value{detail}")


@dataclass(frozen=True)
class Reference:
    """One ``$VAR``, ``${VAR}`` or ``${VAR<operator>word}`` (operator "" for the first two)."""

    name: str
    operator: str = ""
    word: str = ""


def scan(text: str, *, lenient: bool = False) -> Iterator[str | Reference]:
    """The pieces of ``text`` in order: literal text (``$$`` read as ``$``) and references.

    This is the one reader of the ``$`` grammar: interpolation expands its pieces and the
    catalog lists the variables a file uses with `references`. It is lazy, so a malformed
    ``$`` raises FieldError only when reached, as interpolation always did. ``lenient``
    (for listing, never for expanding) reads a malformed ``$`` as text and goes on, but
    stops at an unclosed ``${``.
    """
    pos = 0
    while (dollar := text.find("$", pos)) >= 0:
        if dollar > pos:
            yield text[pos:dollar]
        try:
            piece, pos = _form(text, dollar, lenient)
        except _UnclosedError:
            if lenient:
                return
            raise
        except FieldError:
            if not lenient:
                raise
            piece, pos = "$", dollar + 1
        yield piece
    if pos < len(text):
        yield text[pos:]


def references(text: str, nesting: int = 0) -> Iterator[Reference]:
    """Every variable reference in ``text``, those in defaults, alternatives and messages
    too (whether or not interpolation would need them), in order of appearance. Words are
    read to a depth of 64, far beyond the 8 levels interpolation expands."""
    for piece in scan(text, lenient=True):
        if isinstance(piece, Reference):
            yield piece
            if nesting < _MAX_DEPTH:
                yield from references(piece.word, nesting + 1)


class _UnclosedError(FieldError):
    """A ``${`` without its ``}``."""


def _form(text: str, dollar: int, lenient: bool) -> tuple[str | Reference, int]:
    """One ``$`` form starting at ``dollar``: its piece and the position after it."""
    following = text[dollar + 1 : dollar + 2]
    if following == "$":
        return "$", dollar + 2
    if following == "{":
        return _braced(text, dollar + 2, lenient)
    match = _NAME.match(text, dollar + 1)
    if match is None:
        raise FieldError(f"invalid interpolation in {_quote(text)}: write '$$' for a literal '$'")
    return Reference(match.group()), match.end()


def _braced(text: str, start: int, lenient: bool) -> tuple[str | Reference, int]:
    match = _NAME.match(text, start)
    if match is None:
        if lenient:  # skip the whole form: nothing in it is a variable
            return "", _closing_brace(text, start) + 1
        raise FieldError(f"invalid variable name in {_quote(text)}")
    name, pos = match.group(), match.end()
    if text.startswith("}", pos):
        return Reference(name), pos + 1
    operator = next((op for op in _OPERATORS if text.startswith(op, pos)), None)
    if operator is None:
        if lenient:  # the name is still used, with an operator Compose does not know
            end = _closing_brace(text, pos)
            return Reference(name, "", text[pos:end]), end + 1
        raise FieldError(f"invalid interpolation format for '{name}' in {_quote(text)}")
    word_start = pos + len(operator)
    end = _closing_brace(text, word_start)
    return Reference(name, operator, text[word_start:end]), end + 1


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing a ``${``, skipping nested ``${...}`` and ``$$``."""
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
    raise _UnclosedError(f"unclosed '${{' in {_quote(text)}")


def _quote(text: str, size: int = 80) -> str:
    return repr(text if len(text) <= size else text[: size - 3] + "...")
