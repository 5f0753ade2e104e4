"""The one error type of the compose package, so callers catch exactly one thing.

A compose file is untrusted input: whatever is wrong with it must come out as a
``ComposeError`` holding readable ``Problem``s (the API turns them into a 400), never as a
``KeyError`` or ``TypeError`` escaping from deep inside the parser.
"""

from __future__ import annotations

from dataclasses import dataclass

_SECTION_NAMES = {"services": "service", "volumes": "volume", "networks": "network"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a compose file.

    ``path`` locates it for machines ("services.web.ports[0]"); ``message`` is the full
    sentence for people and already names the service and key; ``rule`` is the stable
    policy rule name for policy problems ("" for syntax and validation problems).
    """

    path: str
    message: str
    rule: str = ""

    def __str__(self) -> str:
        return self.message


class ComposeError(Exception):
    """A compose file was refused; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))

    @property
    def messages(self) -> list[str]:
        """The messages alone, ready for a form error or a Django ValidationError."""
        return [p.message for p in self.problems]


class FieldError(Exception):
    """Internal: a field parser's complaint, turned into a Problem by its caller.

    ``at`` is a path suffix below the field ("[2]", ".target") so the final Problem points
    at the exact item, while the parser itself does not need to know where it is.
    """

    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.at = at

    def within(self, prefix: str) -> FieldError:
        """The same complaint, one level further down the path."""
        return FieldError(self.message, prefix + self.at)


def describe(path: str) -> str:
    """Human location for a path: "services.web.ports[0]" -> "service 'web': ports[0]".

    Messages name the service (or volume, network) first because that is what a person
    looks for in a long compose file.
    """
    head, _, rest = path.partition(".")
    kind = _SECTION_NAMES.get(head)
    if kind and rest:
        name, sep, key = _split_name(rest)
        return f"{kind} '{name}': {key}" if key else f"{kind} '{name}'"
    return path or "compose file"


def _split_name(rest: str) -> tuple[str, str, str]:
    """Split "web.ports[0]" or "web[0]" into the object name and the key path below it."""
    for index, char in enumerate(rest):
        if char in ".[":
            key = rest[index + 1 :] if char == "." else rest[index:]
            return rest[:index], char, key
    return rest, "", ""


def problem_at(path: str, message: str) -> Problem:
    """A validation Problem whose message starts with the readable location."""
    return Problem(path, f"{describe(path)}: {message}")
