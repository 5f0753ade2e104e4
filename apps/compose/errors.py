"""The one error type of the compose package, so callers catch exactly one thing.

A compose file is untrusted input: whatever is wrong with it must come out as a
``ComposeError`` holding readable ``Problem``s (the API turns them into a 400), never as a
``KeyError`` or ``TypeError`` escaping from deep inside the parser.
"""

from __future__ import annotations

from dataclasses import dataclass

_SECTION_NAMES = {
    "services": "service",
    "volumes": "volume",
    "networks": "network",
    "secrets": "secret",
    "configs": "config",
}


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

    def __reduce__(self):  # Celery pickles errors: keep every problem, not just the text
        return (type(self), (self.problems,))

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

    def __reduce__(self):
        return (type(self), (self.message, self.at))

    def within(self, prefix: str) -> FieldError:
        """The same complaint, one level further down the path."""
        return FieldError(self.message, prefix + self.at)


def problem_in(section: str, name: str, key: str, message: str) -> Problem:
    """A Problem inside a service, volume or network, named first: that is what a person
    looks for in a long file ("service 'web': ports[0]: invalid port 'x'").

    ``key`` is the path below the object ("ports[0]", "healthcheck.interval", or "").
    """
    kind = _SECTION_NAMES[section]
    below = key if not key or key.startswith("[") else f".{key}"
    where = f"{kind} '{name}': {key}" if key else f"{kind} '{name}'"
    return Problem(f"{section}.{name}{below}", f"{where}: {message}")


def problem_for(parts: tuple[str | int, ...], message: str) -> Problem:
    """A Problem at a position given as path segments (keys and list indexes)."""
    if len(parts) >= 2 and parts[0] in _SECTION_NAMES and isinstance(parts[1], str):
        return problem_in(str(parts[0]), parts[1], format_path(parts[2:]), message)
    path = format_path(parts)
    return Problem(path, f"{path or 'compose file'}: {message}")


def format_path(parts: tuple[str | int, ...]) -> str:
    """("ports", 0, "target") -> "ports[0].target"."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
