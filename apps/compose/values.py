"""Strict scalar readers shared by the schema: text, booleans, numbers, sizes, durations.

After interpolation a boolean or a number may arrive as a string (``privileged: ${P}``),
so every reader accepts the string spelling too, the way Compose does, and refuses
anything else with a message saying what was expected. Refusing is what keeps the policy
sound: a value we cannot read is never treated as "false".
"""

from __future__ import annotations

import math
import re
from typing import Any

from apps.compose.errors import FieldError
from apps.compose.limits import Limits

_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?(?:([kmgtp])(?:i?b|i)?|b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
# The Compose specification's own spelling (units us, ms, s, m, h; digits on both sides of
# a point): what `duration(..., strict=True)` accepts, Go's extra spellings refused.
_SPEC_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_FACTORS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
MAX_DURATION = 7 * 24 * 3600.0
MAX_SIZE = 1024**5


def kind_of(value: Any) -> str:
    """The YAML word for a Python value, for messages ("expected a string, got a list")."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "a mapping", type(None): "nothing"})
    return names.get(type(value), type(value).__name__)


def text(value: Any, limits: Limits, *, what: str = "a string", size: int | None = None) -> str:
    """A string, length-checked; numbers are not silently turned into strings here."""
    if not isinstance(value, str):
        raise FieldError(f"expected {what}, got {kind_of(value)}")
    return checked_length(value, size or limits.max_string)


def scalar_text(value: Any, limits: Limits, *, what: str = "a string") -> str:
    """A string, or a number/boolean written as one (environment values, user ids)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(value)
    return text(value, limits, what=what)


def checked_length(value: str, size: int) -> str:
    if len(value) > size:
        raise FieldError(f"value is too long ({len(value)} characters, at most {size})")
    if "\x00" in value:
        raise FieldError("value contains a NUL character")
    return value


def boolean(value: Any) -> bool:
    """true/false, or the spellings Compose accepts after interpolation (yes/no/on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise FieldError(f"expected true or false, got {show(value)}")


def integer(value: Any, *, low: int, high: int) -> int:
    """An integer in [low, high], written as a number or as decimal digits."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,18}", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"expected a whole number, got {show(value)}")
    if not low <= value <= high:
        raise FieldError(f"{value} is out of range ({low} to {high})")
    return value


def number(value: Any, *, low: float, high: float, zero_ok: bool = False) -> float:
    """A finite decimal number in (low, high] (or [low, high] with ``zero_ok``), e.g. cpus:
    0.5 or "1.5"."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}(\.\d{0,9})?|\.\d{1,9}", value.strip()):
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(f"expected a number, got {show(value)}")
    if not (low < value or (zero_ok and value == low)) or value > high:
        bound = "at least" if zero_ok else "more than"
        raise FieldError(f"{value} is out of range ({bound} {low}, at most {high})")
    return float(value)


def size(value: Any) -> int:
    """Bytes from "512M", "1g", "1.5GiB", "64kb" or a plain number of bytes (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE:
        return value
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise FieldError(
            f"invalid size {show(value)}: use a number with a unit, like '512M' or '1G'"
        )
    amount = float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()]
    if not 0 < amount <= MAX_SIZE:
        raise FieldError(f"size {show(value)} is out of range")
    return int(amount)


def duration(value: Any, *, strict: bool = False) -> float:
    """Seconds from a Go-style duration ("1m30s", "500ms", "2h"); a bare number is refused
    because Compose would read it as nanoseconds, which is never what anyone meant.

    The one duration reader: compose files use it as Docker does (also "ns", "µs", ".5s",
    a bare 0, spaces around); berth.yml uses it `strict`, in the Compose specification's
    spelling only (units us, ms, s, m, h; no bare 0, no spaces). Either way at most 7 days.
    """
    if not strict and (value == 0 or value == "0"):
        return 0.0
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"invalid duration {show(value)}: use a unit, like '30s' or '1m30s'")
    spec = value if strict else value.strip()
    parts = (_SPEC_DURATION_PART if strict else _DURATION_PART).findall(spec)
    if not parts or "".join(a + u for a, u in parts) != spec:
        raise FieldError(f"invalid duration {show(value)}: use a unit, like '30s' or '1m30s'")
    seconds = sum(float(amount) * _DURATION_FACTORS[unit] for amount, unit in parts)
    if seconds > MAX_DURATION:
        raise FieldError(f"duration {show(value)} is too long (at most 7 days)")
    return seconds


def show(value: Any, size: int = 60) -> str:
    """A short, safe rendering of a bad value for a message."""
    try:
        shown = repr(value)
    except ValueError:  # an integer too long to print
        return "a very long number"
    return shown if len(shown) <= size else shown[: size - 3] + "..."
