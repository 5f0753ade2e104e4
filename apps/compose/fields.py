"""Structure readers for the schema: mappings, lists, "list or map" sections, names.

Each reader raises ``FieldError`` with a path suffix, so the service parser can report the
exact item ("ports[2].target") while these helpers stay ignorant of where they are.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from apps.compose.errors import FieldError
from apps.compose.limits import Limits
from apps.compose.values import checked_length, kind_of, scalar_text, show, text

T = TypeVar("T")

DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


def mapping(value: Any, limits: Limits) -> dict[str, Any]:
    """A mapping with string keys and a bounded number of entries."""
    if not isinstance(value, dict):
        raise FieldError(f"expected a mapping, got {kind_of(value)}")
    if len(value) > limits.max_items:
        raise FieldError(f"too many entries ({len(value)}, at most {limits.max_items})")
    for key in value:
        if not isinstance(key, str):
            raise FieldError(f"keys must be strings, got {kind_of(key)} {key!r}")
        checked_length(key, limits.max_key)
    return value


def sequence(value: Any, limits: Limits, *, cap: int | None = None) -> list[Any]:
    """A list with a bounded number of items."""
    if not isinstance(value, list):
        raise FieldError(f"expected a list, got {kind_of(value)}")
    cap = cap or limits.max_items
    if len(value) > cap:
        raise FieldError(f"too many entries ({len(value)}, at most {cap})")
    return value


def each(items: list[Any], read: Callable[[Any], T]) -> list[T]:
    """Read every item, pointing a failure at its index."""
    out = []
    for index, item in enumerate(items):
        try:
            out.append(read(item))
        except FieldError as exc:
            raise exc.within(f"[{index}]") from None
    return out


def keyed(data: dict[str, Any], key: str, read: Callable[[Any], T], default: Any = None) -> Any:
    """Read ``data[key]`` when present, pointing a failure at the key."""
    if key not in data:
        return default
    try:
        return read(data[key])
    except FieldError as exc:
        raise exc.within(f".{key}") from None


def only_keys(data: dict[str, Any], allowed: Iterable[str], *, extensions: bool = False) -> None:
    """Refuse keys Berth does not handle: an ignored key would be a silent surprise.

    With ``extensions``, "x-*" keys are let through (Compose's extension fields).
    """
    allowed = set(allowed)
    for key in data:
        if extensions and isinstance(key, str) and key.startswith("x-"):
            continue
        if key not in allowed:
            raise FieldError(f"key '{key}' is not supported by Berth", at=f".{key}")


def string_list(value: Any, limits: Limits) -> tuple[str, ...]:
    """A list of strings (numbers allowed, as Compose allows them)."""
    items = sequence(value, limits)
    return tuple(each(items, lambda item: scalar_text(item, limits)))


def command(value: Any, limits: Limits) -> tuple[str, ...]:
    """``command``/``entrypoint``: a list, or a string split like a shell would."""
    if isinstance(value, str):
        try:
            return tuple(shlex.split(text(value, limits)))
        except ValueError as exc:
            raise FieldError(f"cannot split the command: {exc}") from None
    return string_list(value, limits)


def list_or_map(value: Any, limits: Limits, *, bare: str | None = "") -> dict[str, str | None]:
    """environment, labels, sysctls: ``["K=v", "K"]`` or ``{K: v}``.

    ``bare`` is the value of a "K" without "=" (None for environment: "take it from the
    shell"); passing ``bare="error"`` refuses such items.
    """
    if isinstance(value, list):
        pairs = each(sequence(value, limits), lambda item: _pair(item, limits, bare))
    else:
        items = mapping(value, limits).items()
        pairs = [(k, _map_value(k, v, limits, bare)) for k, v in items]
    out: dict[str, str | None] = {}
    for key, item in pairs:
        try:
            plain_key(key)
        except FieldError as exc:
            raise exc.within(f".{key}") from None
        if key in out:
            raise FieldError(f"'{key}' is given twice")
        out[key] = item
    return out


def _pair(item: Any, limits: Limits, bare: str | None) -> tuple[str, str | None]:
    entry = text(item, limits, what="a 'KEY=value' string")
    key, sep, val = entry.partition("=")
    if not sep:
        if bare == "error":
            raise FieldError(f"'{entry}' needs a value ('KEY=value')")
        return key, bare
    return key, val


def _map_value(key: str, value: Any, limits: Limits, bare: str | None) -> str | None:
    if value is None:
        if bare == "error":
            raise FieldError("needs a value", at=f".{key}")
        return bare
    try:
        return scalar_text(value, limits, what="a string, number or boolean")
    except FieldError as exc:
        raise exc.within(f".{key}") from None


def plain_key(key: str) -> None:
    """Variable and label names: non-empty, no "=", no whitespace."""
    if not key or "=" in key or any(c.isspace() for c in key):
        raise FieldError(f"invalid name {key!r}: it must be non-empty, without '=' or spaces")


def resource_name(value: Any, limits: Limits, *, what: str) -> str:
    """A volume or network name: letters, digits, '_', '.', '-', starting alphanumeric."""
    name = text(value, limits, size=64)
    if not RESOURCE_NAME.match(name):
        raise FieldError(f"invalid {what} name {name!r}: use letters, digits, '_', '.' and '-'")
    return name


def absolute_path(value: Any, limits: Limits) -> str:
    """A path inside the container: must be absolute."""
    path = text(value, limits, size=4096)
    if not path.startswith("/"):
        raise FieldError(f"{path!r} must be an absolute path (starting with '/')")
    return path


def choice(value: Any, options: Iterable[str]) -> str:
    """One of a fixed set of words."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise FieldError(f"expected one of {', '.join(options)}, got {show(value)}")
    return value
