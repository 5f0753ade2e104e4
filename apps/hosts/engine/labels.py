"""The labels Berth puts on every object it creates in an engine, and who owns an object.

All of them live under the reverse-DNS prefix `io.berth.`; `io.berth.managed=true` marks
an object as Berth's and `io.berth.installation=<id>` as this installation's, so one
filtered list call finds everything this Berth runs on a host and nothing another Berth
sharing the engine runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

LABEL_PREFIX = "io.berth."
MANAGED_LABEL = LABEL_PREFIX + "managed"
INSTALLATION_LABEL = LABEL_PREFIX + "installation"


def installation_id() -> str:
    return settings.BERTH_INSTALLATION_ID


def label_key(key: str) -> str:
    """`tenant` -> `io.berth.tenant`; keys already under the prefix are kept."""
    key = key.strip()
    if not key or key == LABEL_PREFIX.rstrip("."):
        raise ValueError("A Berth label needs a name.")
    return key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key


def managed_labels(values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels for a new object: the managed and installation markers plus `values`."""
    labels = {MANAGED_LABEL: "true", INSTALLATION_LABEL: installation_id()}
    for key, value in (values or {}).items():
        labels[label_key(key)] = str(value)
    return labels


def label_filters(values: Mapping[str, str | None] | None = None) -> list[str]:
    """Docker `label` filters (ANDed): this installation's markers, and each `key=value`
    or `key`. Every list call goes through here, so none can see another Berth's objects."""
    filters = [f"{MANAGED_LABEL}=true", f"{INSTALLATION_LABEL}={installation_id()}"]
    for key, value in (values or {}).items():
        full = label_key(key)
        filters.append(full if value is None else f"{full}={value}")
    return filters


def foreign_owner(found: Mapping[str, str] | None, owner: Mapping[str, str]) -> str | None:
    """Why an existing engine object with the name Berth wanted is not ours, or None.

    `owner` holds the labels that define the rightful owner (installation, tenant,
    environment, stack ...); every one must match. An object created by hand, by another
    Berth or for another tenant is never adopted, joined, reused or removed.
    """
    found = found or {}
    if found.get(MANAGED_LABEL) != "true":
        return "it was not created by Berth"
    for key, value in owner.items():
        if found.get(key) != value:
            if key == INSTALLATION_LABEL:
                return "it belongs to another Berth installation"
            short = key.removeprefix(LABEL_PREFIX)
            return f"its {short} label is {found.get(key)!r}, not {value!r}"
    return None
