"""The labels Berth puts on every object it creates in an engine.

All of them live under the reverse-DNS prefix `io.berth.`; `io.berth.managed=true` marks
an object as Berth's, so one filtered list call finds everything Berth runs on a host.
"""

from __future__ import annotations

from collections.abc import Mapping

LABEL_PREFIX = "io.berth."
MANAGED_LABEL = LABEL_PREFIX + "managed"


def label_key(key: str) -> str:
    """`tenant` -> `io.berth.tenant`; keys already under the prefix are kept."""
    key = key.strip()
    if not key or key == LABEL_PREFIX.rstrip("."):
        raise ValueError("A Berth label needs a name.")
    return key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key


def managed_labels(values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels for a new object: the managed marker plus `values` under the prefix."""
    labels = {MANAGED_LABEL: "true"}
    for key, value in (values or {}).items():
        labels[label_key(key)] = str(value)
    return labels


def label_filters(values: Mapping[str, str | None] | None = None) -> list[str]:
    """Docker `label` filters (ANDed): the managed marker and each `key=value` or `key`."""
    filters = [f"{MANAGED_LABEL}=true"]
    for key, value in (values or {}).items():
        full = label_key(key)
        filters.append(full if value is None else f"{full}={value}")
    return filters
