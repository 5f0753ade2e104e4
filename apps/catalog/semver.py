"""A tiny semantic-version compare for `upgrade_from` ranges, with no dependency.

Template versions are semver ("1.4.2", "2.0.0-rc.1"); authors write which versions an
upgrade may start from as exact versions or ranges: ">=1.0.0 <2.0.0" (space = and),
"1.x", "1.2.*", "*", several ranges joined by "||". That is all Berth needs, so it is
written here rather than pulling in a library whose range syntax differs.
"""

from __future__ import annotations

import re
from functools import total_ordering

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_WILDCARD = re.compile(r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|==)?\s*(\S+)$")


@total_ordering
class Version:
    """A parsed semver; missing minor/patch count as 0 ("2" == "2.0.0")."""

    __slots__ = ("major", "minor", "patch", "pre", "text")

    def __init__(self, text: str) -> None:
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a version like 1.2.3")
        self.text = text.strip()
        self.major = int(match["major"])
        self.minor = int(match["minor"] or 0)
        self.patch = int(match["patch"] or 0)
        self.pre = tuple(match["pre"].split(".")) if match["pre"] else ()

    def _key(self) -> tuple:
        # A pre-release sorts before its release; numeric identifiers before alphanumeric.
        pre = tuple((0, int(p), "") if p.isdecimal() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def is_version(text: str) -> bool:
    return bool(_VERSION.match(str(text).strip()))


def parse_version(text: str) -> Version:
    return Version(str(text))


def _wildcard(term: str) -> tuple[Version, Version | None] | None:
    """ "1.x" -> [1.0.0, 2.0.0); "1.2.*" -> [1.2.0, 1.3.0); "*" -> everything."""
    if term in ("*", "x", "X"):
        return Version("0.0.0-0"), None
    match = _WILDCARD.match(term)
    if not match or not any(p in ("x", "X", "*") for p in match.groups() if p):
        return None
    major, minor, _ = match.groups()
    if minor is None or not minor.isdecimal():
        return Version(f"{major}.0.0-0"), Version(f"{int(major) + 1}.0.0-0")
    return Version(f"{major}.{minor}.0-0"), Version(f"{major}.{int(minor) + 1}.0-0")


def _term_matches(term: str, version: Version) -> bool:
    bounds = _wildcard(term)
    if bounds is not None:
        low, high = bounds
        return version >= low and (high is None or version < high)
    match = _COMPARATOR.match(term)
    if match is None:
        raise ValueError(f"{term!r} is not a version or range")
    operator, other = match[1] or "=", Version(match[2])
    return {
        ">=": version >= other,
        "<=": version <= other,
        ">": version > other,
        "<": version < other,
        "=": version == other,
        "==": version == other,
    }[operator]


def _terms(expression: str) -> list[str]:
    """ ">= 1.0 <2" -> [">=1.0", "<2"]: an operator may be followed by spaces."""
    return re.findall(r"(?:>=|<=|>|<|==|=)?\s*[^\s<>=]+", expression.strip())


def check_range(expression: str) -> None:
    """Raise ValueError when `expression` is not a version range Berth understands."""
    if not str(expression).strip():
        raise ValueError("an empty range")
    for alternative in str(expression).split("||"):
        terms = _terms(alternative)
        if not terms:
            raise ValueError(f"{expression!r} has an empty alternative")
        for term in terms:
            _term_matches(term.replace(" ", ""), Version("0.0.0"))


def matches(version: str | Version, expression: str) -> bool:
    """Does `version` satisfy the range (or exact version) `expression`?"""
    if not isinstance(version, Version):
        version = Version(version)
    for alternative in str(expression).split("||"):
        terms = [t.replace(" ", "") for t in _terms(alternative)]
        if terms and all(_term_matches(term, version) for term in terms):
            return True
    return False
