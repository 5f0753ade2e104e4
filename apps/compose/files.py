"""Secrets and configs: the top-level definitions and a service's use of them.

Berth delivers both from the stack environment's own store (apps.deployments.
secret_store), never from files on the host or the deployer's shell: a top-level entry
names a store entry (`external: true` for the entry of the same name, or `name:`), and
everything else Compose allows there (`file`, `environment`, `content`, `driver`,
`template_driver`, `labels`) is refused by name. A service lists the entries it mounts,
in the short syntax (`- db_password`) or the long one (`source`, `target`, `uid`,
`gid`, `mode`). Targets are resolved here, once: a secret at `/run/secrets/<target>`
(default: its source), a config at an absolute path (default: `/<source>`).
"""

from __future__ import annotations

import re
from typing import Any

from apps.compose.errors import FieldError
from apps.compose.fields import RESOURCE_NAME, each, keyed, mapping, sequence
from apps.compose.limits import Limits
from apps.compose.spec import FileReference, StoreReference
from apps.compose.values import boolean, kind_of, scalar_text, text

SECRETS_DIR = "/run/secrets"
KINDS = ("secret", "config")
#: Default file modes: a secret readable by its owner only (uid 0 unless given), a
#: config by everyone. The same on a single engine and on a swarm.
DEFAULT_MODES = {"secret": 0o400, "config": 0o444}
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PATH = re.compile(r"^(/[A-Za-z0-9._@+-]+){1,32}$")
_ID = re.compile(r"^\d{1,10}$")
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")
_REFUSED = {
    "file": "files on the Berth host are not read",
    "environment": "variables of the deployer's shell are not read",
    "content": "inline content would be stored in the stack's revision, readable by viewers",
    "driver": "only Berth's store delivers them",
    "driver_opts": "only Berth's store delivers them",
    "template_driver": "templates are not supported",
    "labels": "Berth labels what it creates itself",
}


def store_reference(kind: str, key: str, data: dict[str, Any], limits: Limits) -> StoreReference:
    """A top-level `secrets:` or `configs:` entry: the store entry it names."""
    for field in data:
        if field in ("external", "name") or field.startswith("x-"):
            continue
        reason = _REFUSED.get(field, "it is not supported by Berth")
        raise FieldError(
            f"key '{field}' is refused ({reason}): Berth delivers {kind}s from the "
            f"environment's {kind} store; create '{key}' there and write `external: true`",
            at=f".{field}",
        )
    external, legacy = keyed(data, "external", lambda v: _external(v, limits), (False, None))
    name = keyed(data, "name", lambda v: entry_name(v, limits, kind)) or legacy
    if not external and name is None:
        raise FieldError(
            f"name an entry of the environment's {kind} store: write `external: true` (the "
            f"entry called '{key}') or `name: <entry>`"
        )
    return StoreReference(key=key, name=name or key)


def _external(value: Any, limits: Limits) -> tuple[bool, str | None]:
    if isinstance(value, dict):
        data = mapping(value, limits)
        for field in data:
            if field != "name":
                raise FieldError(f"key '{field}' is not supported by Berth", at=f".{field}")
        return True, keyed(data, "name", lambda v: entry_name(v, limits, "store"))
    return boolean(value), None


def entry_name(value: Any, limits: Limits, kind: str) -> str:
    """A store entry's name, as Compose and Swarm accept it (the store's own rule)."""
    name = text(value, limits, size=64)
    if not RESOURCE_NAME.match(name):
        raise FieldError(
            f"invalid {kind} name {name!r}: use 1 to 64 letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return name


def service_files(kind: str) -> Any:
    """The reader of a service's `secrets:` or `configs:` list."""

    def read(value: Any, limits: Limits) -> tuple[FileReference, ...]:
        found = tuple(each(sequence(value, limits), lambda item: _reference(kind, item, limits)))
        targets: set[str] = set()
        owners: dict[str, tuple] = {}
        for index, ref in enumerate(found):
            if ref.target in targets:
                raise FieldError(f"target {ref.target} is used twice", at=f"[{index}]")
            targets.add(ref.target)
            owner = owners.setdefault(ref.source, (ref.uid, ref.gid, ref.mode))
            if owner != (ref.uid, ref.gid, ref.mode):
                raise FieldError(
                    f"{ref.source} is mounted twice with another uid, gid or mode: on a swarm "
                    f"a {kind} has one owner and mode in a container (give both the same)",
                    at=f"[{index}]",
                )
        return found

    return read


def _reference(kind: str, item: Any, limits: Limits) -> FileReference:
    if isinstance(item, str):
        source = entry_name(item, limits, kind)
        return FileReference(source=source, target=_target(kind, None, source, limits))
    if not isinstance(item, dict):
        raise FieldError(f"expected a {kind} name or a mapping, got {kind_of(item)}")
    data = mapping(item, limits)
    for field in data:
        if field not in ("source", "target", "uid", "gid", "mode"):
            raise FieldError(f"key '{field}' is not supported by Berth", at=f".{field}")
    if "source" not in data:
        raise FieldError(f"'source' is required: the top-level {kind} to mount")
    source = keyed(data, "source", lambda v: entry_name(v, limits, kind))
    default = _target(kind, None, source, limits)
    return FileReference(
        source=source,
        target=keyed(data, "target", lambda v: _target(kind, v, source, limits), default),
        uid=keyed(data, "uid", lambda v: _owner_id(v, limits)),
        gid=keyed(data, "gid", lambda v: _owner_id(v, limits)),
        mode=keyed(data, "mode", _mode),
    )


def _target(kind: str, value: Any, source: str, limits: Limits) -> str:
    """Where the file appears: a secret in /run/secrets (a file name, or a path there),
    a config at an absolute path (not under /proc, /sys or /dev)."""
    if value is None:
        return f"{SECRETS_DIR}/{source}" if kind == "secret" else f"/{source}"
    target = text(value, limits, size=512)
    if kind == "secret":
        name = target.removeprefix(f"{SECRETS_DIR}/")
        if not _FILE_NAME.match(name):
            raise FieldError(
                f"invalid target {target!r}: a secret is a file in {SECRETS_DIR}; give its "
                "name (letters, digits, '.', '_' and '-')"
            )
        return f"{SECRETS_DIR}/{name}"
    parts = target.split("/")
    if not _PATH.match(target) or any(p in (".", "..") for p in parts):
        raise FieldError(
            f"invalid target {target!r}: give an absolute path of letters, digits, '.', '_', "
            "'-', '@' and '+' (no '..')"
        )
    if any(target == root or target.startswith(root + "/") for root in _FORBIDDEN_ROOTS):
        raise FieldError(f"invalid target {target!r}: not under /proc, /sys or /dev")
    return target


def _owner_id(value: Any, limits: Limits) -> str:
    word = scalar_text(value, limits)
    if not _ID.match(word):
        raise FieldError(f"expected a numeric user or group id, got {word!r}")
    return word


def _mode(value: Any) -> int:
    """A file mode in octal digits, as Compose files write it (`mode: 0440` or "0440").

    The YAML 1.2 reader turns 0440 into the number 440, so a number is read back as the
    octal digits it was written with; one with an 8 or a 9 in it was not written so."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{1,3}", value.strip()):
        raise FieldError(
            f"invalid mode {value!r}: write it in octal digits, from 0000 to 0777 (like 0440)"
        )
    return int(value.strip(), 8)
