"""An environment's store of secrets and configs, and how stacks use it.

Every change goes through here: `create_entry`, `rotate_entry` (a new value: the version
goes up and every stack using the entry is reconciled, which delivers the new value),
`delete_entry` (refused while a stack uses the entry). Members and above change the
store; viewers see names only (the pages and the API list them; a config's value is
shown to members, a secret's value to nobody once saved). Events say what changed,
never the value.

Values are encrypted at rest (apps.core.crypto) and decrypted only by the reconciler
(`values_for`), right before delivery. The Revision spec holds the compose file's names
(`project.secrets`, `project.configs`, each service's targets), never a value, so
rollbacks and revision pages carry no secret. What a stack's services get is the
entries' current values: a rotation reaches every stack that uses the entry, and
`store_versions` folds the entries' versions into the spec hash so the reconcilers
replace (engine) or update (Swarm) exactly the services that mount them.

Delivery: on a Swarm cluster as Swarm secrets and configs (apps/deployments/
swarm_reconcile.py); on a single engine as files written into each container after it
is created and before it starts (`ContainerRequest.files`, apps/hosts/engine), owned
uid:gid with the mode the compose file gives (a secret 0400, a config 0444 by default),
the same paths and defaults as on a swarm. There they live in the container's writable
layer on the host's disk (Swarm keeps them in memory): the engine host is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.activity.services import record_event
from apps.compose.fields import RESOURCE_NAME
from apps.core import crypto
from apps.core.queue import enqueue_on_commit
from apps.core.roles import Role
from apps.core.tenancy import require_role, role_of
from apps.deployments.models import Secret, Stack

#: Swarm refuses a secret or config over 500 KiB; the store keeps to the same bound so
#: an entry deploys the same everywhere.
MAX_VALUE_BYTES = 500 * 1024
_PURPOSE = b"berth environment secrets"
_SECTIONS = {Secret.Kind.SECRET: "secrets", Secret.Kind.CONFIG: "configs"}
BAD_NAME = (
    "Use 1 to 64 letters, digits, '_', '.' and '-', starting with a letter or digit "
    "(the names a compose file can use)."
)


class StoreError(Exception):
    """An entry a stack needs cannot be read (deleted meanwhile, or SECRET_KEY changed)."""


# --- rules -------------------------------------------------------------------------------------


def clean_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not RESOURCE_NAME.match(name):
        raise ValidationError({"name": [BAD_NAME]})
    return name


def clean_kind(value: Any) -> str:
    if value not in Secret.Kind.values:
        raise ValidationError({"kind": ["Choose secret or config."]})
    return str(value)


def clean_value(value: Any) -> bytes:
    """The value as bytes (UTF-8 text), not empty and at most MAX_VALUE_BYTES."""
    if not isinstance(value, str) or value == "":
        raise ValidationError({"value": ["Enter a value."]})
    data = value.encode()
    if len(data) > MAX_VALUE_BYTES:
        raise ValidationError(
            {"value": [f"At most {MAX_VALUE_BYTES // 1024} KiB ({len(data)} bytes given)."]}
        )
    return data


def digest_of(data: bytes) -> str:
    """A keyed digest of a value: equal values, equal digests, and nothing to guess from."""
    key = hashlib.sha256(b"berth secret digest:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


def can_read_value(user: Any, entry: Secret) -> bool:
    """Only a config's value is ever shown, and to members and above."""
    if entry.kind != Secret.Kind.CONFIG:
        return False
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    role = role_of(user, entry.tenant)
    return role is not None and role != Role.VIEWER


def config_value(user: Any, entry: Secret) -> str | None:
    """A config's value for a member; None for a secret or a viewer."""
    return value_of(entry).decode(errors="replace") if can_read_value(user, entry) else None


def value_of(entry: Secret) -> bytes:
    """The decrypted value (for delivery and a config's page); StoreError if unreadable."""
    try:
        return crypto.decrypt(entry.value_encrypted, _PURPOSE)
    except InvalidToken as exc:
        raise StoreError(
            f"The {entry.kind} {entry.name} cannot be decrypted (SECRET_KEY changed since it "
            "was saved): rotate it with its value."
        ) from exc


# --- changes ------------------------------------------------------------------------------------


def _set_value(entry: Secret, data: bytes) -> None:
    entry.value_encrypted = crypto.encrypt(data, _PURPOSE)
    entry.digest = digest_of(data)
    entry.size = len(data)


def _event(action: str, actor: Any, entry: Secret, message: str) -> None:
    record_event(
        action,
        actor=actor,
        tenant=entry.tenant,
        obj=entry,
        message=message,
        data={
            "environment": entry.environment_id,
            "kind": entry.kind,
            "name": entry.name,
            "version": entry.version,
        },
    )


@transaction.atomic
def create_entry(actor: Any, environment: Any, *, kind: str, name: Any, value: Any) -> Secret:
    """A new secret or config in the environment (members and above)."""
    require_role(actor, environment.tenant, Role.MEMBER)
    errors: dict[str, list[str]] = {}
    checked: dict[str, Any] = {}
    for field, check, raw in (("kind", clean_kind, kind), ("name", clean_name, name)):
        try:
            checked[field] = check(raw)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    try:
        data = clean_value(value)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not errors and Secret.objects.filter(environment=environment, **checked).exists():
        errors["name"] = [f"A {checked['kind']} named {checked['name']} already exists here."]
    if errors:
        raise ValidationError(errors)
    entry = Secret(
        tenant=environment.tenant,
        environment=environment,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **checked,
    )
    _set_value(entry, data)
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError:  # created at the same moment by someone else
        raise ValidationError(
            {"name": [f"A {entry.kind} named {entry.name} already exists here."]}
        ) from None
    _event(f"{entry.kind}.create", actor, entry, f"Created {entry.kind} {entry.name}")
    return entry


@transaction.atomic
def rotate_entry(actor: Any, entry: Secret, *, value: Any) -> Secret:
    """A new value (version + 1); every stack using the entry is reconciled with it."""
    require_role(actor, entry.tenant, Role.MEMBER)
    data = clean_value(value)
    entry = Secret.objects.select_for_update().select_related("tenant").get(pk=entry.pk)
    _set_value(entry, data)
    entry.version += 1
    entry.save()
    users = stacks_using(entry)
    message = f"Rotated {entry.kind} {entry.name} to version {entry.version}"
    if users:
        message += f"; redeploying {', '.join(s.name for s in users)}"
    _event(f"{entry.kind}.rotate", actor, entry, message)
    # here, not at the top: the tasks import the reconcilers, which import this module
    from apps.deployments.tasks import reconcile_stack

    for stack in users:
        enqueue_on_commit(reconcile_stack, stack.pk)
    return entry


@transaction.atomic
def delete_entry(actor: Any, entry: Secret) -> None:
    """Remove the entry (members and above), unless a stack uses it."""
    require_role(actor, entry.tenant, Role.MEMBER)
    users = stacks_using(entry)
    if users:
        names = ", ".join(s.name for s in users)
        raise ValidationError(
            f"The {entry.kind} {entry.name} is used by {names}: remove it from their compose "
            "files first."
        )
    _event(f"{entry.kind}.delete", actor, entry, f"Deleted {entry.kind} {entry.name}")
    entry.delete()


# --- stacks and the store -----------------------------------------------------------------------


def referenced(spec: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """{kind: {compose key: entry name}} of a Revision spec's top-level secrets/configs."""
    project = (spec or {}).get("project") or {}
    return {
        kind: {key: str(ref["name"]) for key, ref in (project.get(section) or {}).items()}
        for kind, section in _SECTIONS.items()
    }


def stacks_using(entry: Secret) -> list[Stack]:
    """The environment's stacks (not being removed) whose current revision names it."""
    stacks = (
        Stack.objects.filter(environment_id=entry.environment_id)
        .exclude(desired_state=Stack.Desired.REMOVED)
        .select_related("current_revision")
        .order_by("name")
    )
    return [
        s
        for s in stacks
        if s.current_revision
        and entry.name in referenced(s.current_revision.spec)[entry.kind].values()
    ]


def check_references(environment: Any, spec: Mapping[str, Any]) -> None:
    """A ValidationError on `compose` for each entry the spec names that the
    environment's store does not hold (refused at create and edit, not at deploy)."""
    wanted = referenced(spec)
    if not any(wanted.values()):
        return
    held = set(Secret.objects.filter(environment=environment).values_list("kind", "name"))
    problems = [
        f"{_SECTIONS[kind]}.{key}: there is no {kind} named '{name}' in the environment "
        f"{environment.slug}: create it on the environment's Secrets page first"
        for kind, entries in wanted.items()
        for key, name in entries.items()
        if (kind, name) not in held
    ]
    if problems:
        raise ValidationError({"compose": problems})


def entries_for(stack: Any, spec: Mapping[str, Any] | None) -> dict[str, dict[str, Secret]]:
    """{kind: {compose key: entry}} for the spec's references; StoreError for a missing one."""
    wanted = referenced(spec)
    if not any(wanted.values()):
        return {kind: {} for kind in wanted}
    names = {n for entries in wanted.values() for n in entries.values()}
    rows = {
        (e.kind, e.name): e
        for e in Secret.objects.filter(environment_id=stack.environment_id, name__in=names)
    }
    found: dict[str, dict[str, Secret]] = {}
    for kind, entries in wanted.items():
        found[kind] = {}
        for key, name in entries.items():
            if (kind, name) not in rows:
                raise StoreError(
                    f"The {kind} {name} is not in the environment's store any more: create it "
                    "again, or remove it from the compose file."
                )
            found[kind][key] = rows[kind, name]
    return found


def store_versions(entries: Mapping[str, Mapping[str, Secret]]) -> dict[str, str]:
    """{"secret:<key>": "<entry id>.<version>"}: what a spec hash must follow (no value)."""
    return {
        f"{kind}:{key}": f"{entry.pk}.{entry.version}"
        for kind, by_key in entries.items()
        for key, entry in by_key.items()
    }
