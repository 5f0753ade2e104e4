"""Service ``volumes`` in short and long syntax, classified as volume, bind or tmpfs.

Classification follows Compose: a short-syntax source starting with "/", "." or "~" is a
host path (a bind mount), anything else names a top-level volume. The policy only has to
look at ``VolumeMount.type``, whatever syntax the author used.
"""

from __future__ import annotations

from typing import Any

from apps.compose.errors import FieldError
from apps.compose.fields import (
    absolute_path,
    choice,
    each,
    keyed,
    mapping,
    only_keys,
    resource_name,
    sequence,
)
from apps.compose.limits import Limits
from apps.compose.spec import VolumeMount
from apps.compose.values import boolean, integer, kind_of, size, text

HOST_PATH_PREFIXES = ("/", ".", "~")
_SHORT_OPTIONS = {"ro", "rw", "z", "Z", "nocopy", "cached", "delegated", "consistent"}
_PROPAGATION = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
_LONG_KEYS = ("type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs")


def parse_mounts(value: Any, limits: Limits) -> tuple[VolumeMount, ...]:
    """All mounts of a service, at most ``limits.max_volumes``."""
    items = sequence(value, limits, cap=limits.max_volumes)
    return tuple(each(items, lambda item: _mount(item, limits)))


def _mount(item: Any, limits: Limits) -> VolumeMount:
    if isinstance(item, dict):
        return _long_mount(mapping(item, limits), limits)
    if isinstance(item, str):
        return _short_mount(text(item, limits, size=4096), limits)
    raise FieldError(f"expected 'SOURCE:TARGET[:MODE]' or a mapping, got {kind_of(item)}")


def _short_mount(spec: str, limits: Limits) -> VolumeMount:
    parts = spec.split(":")
    if len(parts) > 3:
        raise FieldError(f"invalid volume {spec!r}: expected SOURCE:TARGET[:MODE]")
    if len(parts) == 1:
        return VolumeMount(type="volume", target=absolute_path(parts[0], limits))
    source, target = parts[0], absolute_path(parts[1], limits)
    options = _short_options(parts[2] if len(parts) == 3 else "")
    common = {"target": target, "read_only": "ro" in options, "selinux": _selinux(options)}
    if source.startswith(HOST_PATH_PREFIXES):
        return VolumeMount(type="bind", source=source, **common)
    name = resource_name(source, limits, what="volume")
    return VolumeMount(type="volume", source=name, nocopy="nocopy" in options, **common)


def _short_options(spec: str) -> set[str]:
    options = {opt for opt in spec.split(",") if opt} if spec else set()
    unknown = options - _SHORT_OPTIONS - set(_PROPAGATION)
    if unknown:
        raise FieldError(f"unknown volume option {sorted(unknown)[0]!r}")
    if {"ro", "rw"} <= options or {"z", "Z"} <= options:
        raise FieldError(f"conflicting volume options {spec!r}")
    return options


def _selinux(options: set[str]) -> str | None:
    return "z" if "z" in options else "Z" if "Z" in options else None


def _long_mount(data: dict[str, Any], limits: Limits) -> VolumeMount:
    only_keys(data, _LONG_KEYS)
    kind = keyed(data, "type", lambda v: choice(v, ("volume", "bind", "tmpfs")))
    if kind is None:
        raise FieldError("the long volume syntax needs 'type' (volume, bind or tmpfs)")
    if "target" not in data:
        raise FieldError("the long volume syntax needs 'target'")
    common = {
        "type": kind,
        "target": keyed(data, "target", lambda v: absolute_path(v, limits)),
        "read_only": keyed(data, "read_only", boolean, False),
    }
    keyed(data, "consistency", lambda v: choice(v, ("consistent", "cached", "delegated")))
    readers = {"volume": _long_volume, "bind": _long_bind, "tmpfs": _long_tmpfs}
    return readers[kind](data, limits, common)


def _no_options_but(data: dict[str, Any], kind: str) -> None:
    """``bind:``/``volume:``/``tmpfs:`` sub-options only make sense for their own type."""
    for other in ("bind", "volume", "tmpfs"):
        if other != kind and other in data:
            raise FieldError(f"'{other}' options do not apply to a {kind} mount", at=f".{other}")


def _long_volume(data: dict[str, Any], limits: Limits, common: dict[str, Any]) -> VolumeMount:
    _no_options_but(data, "volume")
    source = keyed(data, "source", lambda v: resource_name(v, limits, what="volume"))
    options = keyed(data, "volume", lambda v: _options(v, limits, _VOLUME_OPTIONS), {})
    return VolumeMount(source=source, **options, **common)


def _long_bind(data: dict[str, Any], limits: Limits, common: dict[str, Any]) -> VolumeMount:
    _no_options_but(data, "bind")
    if not data.get("source"):
        raise FieldError("a bind mount needs 'source' (a host path)")
    source = keyed(data, "source", lambda v: text(v, limits, size=4096))
    options = keyed(data, "bind", lambda v: _options(v, limits, _BIND_OPTIONS), {})
    return VolumeMount(source=source, **options, **common)


def _long_tmpfs(data: dict[str, Any], limits: Limits, common: dict[str, Any]) -> VolumeMount:
    _no_options_but(data, "tmpfs")
    if data.get("source"):
        raise FieldError("a tmpfs mount has no 'source'", at=".source")
    options = keyed(data, "tmpfs", lambda v: _options(v, limits, _TMPFS_OPTIONS), {})
    return VolumeMount(**options, **common)


def _options(value: Any, limits: Limits, readers: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Read a ``bind:``/``volume:``/``tmpfs:`` block into VolumeMount keyword arguments."""
    options = mapping(value, limits)
    only_keys(options, readers)
    return {
        field: keyed(options, key, read) for key, (field, read) in readers.items() if key in options
    }


_VOLUME_OPTIONS = {"nocopy": ("nocopy", boolean)}
_BIND_OPTIONS = {
    "propagation": ("propagation", lambda v: choice(v, _PROPAGATION)),
    "create_host_path": ("create_host_path", boolean),
    "selinux": ("selinux", lambda v: choice(v, ("z", "Z"))),
}
_TMPFS_OPTIONS = {
    "size": ("tmpfs_size", size),
    "mode": ("tmpfs_mode", lambda v: integer(v, low=0, high=0o7777)),
}
