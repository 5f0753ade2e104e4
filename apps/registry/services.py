"""Every change to the registry's state goes through here: repository visibility, tag
deletion, robot accounts, storage quotas and alert thresholds, the platform's published
images, manifest uploads through the gate, the registry's notifications and garbage
collection.

One function per operation; each checks the actor's role, validates, writes, and
records an Event. Views, API viewsets, tasks and management commands only call these;
the modules beside it hold pure helpers and the registry's plumbing (config, client,
gate, quota accounting, notification counting).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.core.queue import enqueue, enqueue_on_commit
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.registry import gate, gc, notifications, publish, quota, tasks
from apps.registry.client import RegistryClient, RegistryError
from apps.registry.models import (
    Repository,
    RobotAccount,
    TenantRegistryQuota,
    clean_robot_repositories,
    robot_expiry,
    validated_robot_name,
)
from apps.registry.token.credentials import (
    ACTIONS_BY_SCOPE,
    SECRET_PREFIX,
    publisher_credentials,
)
from apps.tenants.models import Tenant, hash_secret
from apps.tenants.services import ensure_platform_tenant

MAX_THRESHOLD = 10_000_000


def _require_platform_admin(actor: Any, doing: str) -> None:
    if not (actor.is_active and actor.is_superuser):
        raise PermissionDenied(f"Only a platform administrator {doing}.")


# --- repositories -------------------------------------------------------------------------


def set_visibility(*, actor: Any, repository: Repository, visibility: str) -> Repository:
    """Public repositories can be pulled by any signed-in user; private by the tenant."""
    require_role(actor, repository.tenant, Role.ADMIN)
    if visibility not in Repository.Visibility.values:
        raise ValidationError({"visibility": "Choose private or public."})
    if repository.visibility != visibility:
        repository.visibility = visibility
        repository.save(update_fields=["visibility"])
        record_event(
            "registry.repository.visibility",
            actor=actor,
            tenant=repository.tenant,
            obj=repository,
            data={"visibility": visibility},
        )
    return repository


def delete_tag(
    *, actor: Any, repository: Repository, tag: str, client: RegistryClient | None = None
) -> str:
    """Delete a tag by deleting the manifest it points at; returns that digest.

    The registry (distribution 2.8) deletes manifests by digest only, so every tag of the
    same image goes too: the confirmation page lists them. The disk is freed by the next
    garbage collection.
    """
    require_role(actor, repository.tenant, Role.ADMIN)
    client = client or RegistryClient()
    try:
        digest = client.manifest(repository.full_name, tag).digest
        client.delete_manifest(repository.full_name, digest)
    except RegistryError as exc:
        if exc.status == 404:
            raise ValidationError({"tag": f"{repository.full_name}:{tag} does not exist."}) from exc
        raise ValidationError({"tag": str(exc)}) from exc
    record_event(
        "registry.tag.delete",
        actor=actor,
        tenant=repository.tenant,
        obj=repository,
        message=f"Deleted {repository.full_name}:{tag} ({digest}).",
        data={"tag": tag, "digest": digest},
    )
    enqueue_on_commit(tasks.refresh_usage, repository.tenant_id)
    return digest


def delete_repository(
    *, actor: Any, repository: Repository, client: RegistryClient | None = None
) -> None:
    """Forget an empty repository (no tag left): its row, counters and page go.

    Only an empty one: deleting a repository with tags would take images running stacks
    may still pull, so those are deleted tag by tag first (a ValidationError names them).
    The registry has no API to delete a repository; its empty folder stays in the
    registry's storage, unlisted here, and a later push creates the repository again.
    """
    require_role(actor, repository.tenant, Role.ADMIN)
    client = client or RegistryClient()
    try:
        tags = client.list_tags(repository.full_name)
    except RegistryError as exc:
        raise ValidationError({"repository": str(exc)}) from exc
    if tags:
        shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
        raise ValidationError(
            {
                "repository": f"{repository.full_name} still has {len(tags)} "
                f"tag{'s' if len(tags) != 1 else ''} ({shown}): delete them first; only an "
                "empty repository can be deleted."
            }
        )
    record_event(
        "registry.repository.delete",
        actor=actor,
        tenant=repository.tenant,
        obj=repository,
        message=f"Deleted the empty repository {repository.full_name}.",
        data={"repository": repository.full_name},
    )
    repository.delete()
    enqueue_on_commit(tasks.refresh_usage, repository.tenant_id)


# --- robot accounts: CI credentials of one tenant (apps/registry/token/credentials.py) -------
# Creating and revoking need the tenant's admin role, because a robot outlives the person
# who made it; the fields are checked by the rules beside the model.


def create_robot(
    *,
    actor: Any,
    tenant: Tenant,
    name: str,
    scope: str = RobotAccount.Scope.PULL,
    repositories: Iterable[str] | str | None = (),
    expires_days: int | None = None,
    expires_at: datetime | None = None,
    description: str = "",
) -> tuple[RobotAccount, str]:
    """Create a robot of `tenant`; returns it with the raw secret, which is never stored."""
    require_role(actor, tenant, Role.ADMIN)
    name = validated_robot_name(name)
    if scope not in ACTIONS_BY_SCOPE:
        raise ValidationError({"scope": "Choose pull, or push (push and pull)."})
    raw = SECRET_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            robot = RobotAccount.objects.create(
                tenant=tenant,
                name=name,
                description=(description or "").strip()[:300],
                scope=scope,
                repositories=clean_robot_repositories(repositories),
                expires_at=robot_expiry(expires_days, expires_at),
                secret_hash=hash_secret(raw),
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
    except IntegrityError as exc:
        raise ValidationError({"name": f"{tenant.slug} already has a robot {name}."}) from exc
    record_event(
        "registry.robot.create",
        actor=actor,
        tenant=tenant,
        obj=robot,
        data={"scope": scope, "repositories": robot.repositories},
    )
    return robot, raw


@transaction.atomic
def revoke_robot(*, actor: Any, robot: RobotAccount) -> RobotAccount:
    """Revoke at once: the next token request with its secret is refused."""
    require_role(actor, robot.tenant, Role.ADMIN)
    robot = RobotAccount.objects.select_for_update().get(pk=robot.pk)
    if robot.revoked_at is None:
        robot.revoked_at = timezone.now()
        robot.save(update_fields=["revoked_at"])
        record_event("registry.robot.revoke", actor=actor, tenant=robot.tenant, obj=robot)
    return robot


# --- storage quota and pull alerts (accounting in apps/registry/quota.py) ---------------------


def set_quota(*, actor: Any, tenant: Tenant, quota_bytes: int) -> TenantRegistryQuota:
    """Platform admins set a tenant's storage quota (0: unlimited)."""
    _require_platform_admin(actor, "sets storage quotas")
    if quota_bytes < 0:
        raise ValidationError({"quota_bytes": "Use 0 (unlimited) or a positive size."})
    row = quota.quota_of(tenant)
    row.quota_bytes = quota_bytes
    row.save(update_fields=["quota_bytes"])
    record_event("registry.quota", actor=actor, tenant=tenant, obj=row, data={"bytes": quota_bytes})
    return row


def set_pull_alert_threshold(*, actor: Any, tenant: Tenant, threshold: int) -> TenantRegistryQuota:
    """Tenant admins choose the daily pulls of one repository that raise an alert."""
    require_role(actor, tenant, Role.ADMIN)
    if threshold is None or not 0 <= int(threshold) <= MAX_THRESHOLD:
        raise ValidationError(
            {"pull_alert_threshold": f"Choose 0 (no alert) up to {MAX_THRESHOLD} pulls a day."}
        )
    row = quota.quota_of(tenant)
    row.pull_alert_threshold = int(threshold)
    row.save(update_fields=["pull_alert_threshold"])
    record_event(
        "registry.pull_alert_threshold",
        actor=actor,
        tenant=tenant,
        obj=row,
        data={"threshold": row.pull_alert_threshold},
    )
    return row


# --- the platform's own images (naming in apps/registry/publish.py) -------------------------


def publish_images(
    *,
    actor: Any,
    engine: Any,
    sources: Sequence[str],
    progress: Callable[[publish.Published], None] | None = None,
) -> list[publish.Published]:
    """Tag each local demo image with its registry name and push it with the publisher's
    short-lived credential; make its repository public. Safe to repeat: pushing an
    unchanged image sends no layer again."""
    _require_platform_admin(actor, "publishes platform images")
    targets = [(source, publish.platform_ref(source)) for source in sources]  # all valid, or none
    tenant, _ = ensure_platform_tenant(owner=actor)
    username, password = publisher_credentials(tenant.slug)
    auth = {
        "username": username,
        "password": password,
        "serveraddress": settings.BERTH_REGISTRY_ADDR,
    }
    published = []
    for source, target in targets:
        digest = publish.already_published(engine, source, target)
        if digest:
            item = publish.Published(source=source, target=target, digest=digest, pushed=False)
        else:
            engine.tag_image(source, target)
            digest = engine.push(target, auth_config=auth)
            item = publish.Published(source=source, target=target, digest=digest)
        _record_published(actor, tenant, item)
        published.append(item)
        if progress is not None:
            progress(item)
    return published


@transaction.atomic
def _record_published(actor: Any, tenant: Tenant, item: publish.Published) -> None:
    name, _tag = publish.platform_path(item.source)
    repository, created = Repository.objects.get_or_create(tenant=tenant, name=name)
    if repository.visibility != Repository.Visibility.PUBLIC:
        repository.visibility = Repository.Visibility.PUBLIC
        repository.save(update_fields=["visibility"])
    if not (item.pushed or created):
        return  # nothing changed: `make run` restarts leave no event behind
    record_event(
        "registry.image.publish",
        actor=actor,
        tenant=tenant,
        obj=repository,
        message=f"Published {item.target} ({item.digest or 'digest unknown'}).",
        data={
            "source": item.source,
            "target": item.target,
            "digest": item.digest,
            "pushed": item.pushed,
        },
    )


# --- the gate: uploads routed through Berth (apps/registry/gate.py) -------------------------


def store_manifest(
    path: str, query: str, headers: Any, body: bytes, *, name: str, subject: str
) -> gate.Forwarded:
    """Check the tenant's quota, then hand the manifest to the registry.

    The blobs new to the tenant are reserved before the registry sees the manifest; when
    the registry does not store it after all, a usage walk is queued to give them back.
    A refusal is recorded in the tenant's activity, with who pushed what."""
    backend = gate.backend_for(headers)
    tenant = Tenant.objects.filter(slug=name.partition("/")[0]).first()
    metered = tenant is not None and quota.is_limited(tenant)
    blobs = gate.manifest_blobs(body) if metered else {}
    if blobs:
        sizes = gate.stored_sizes(name, blobs, headers.get("Authorization", ""), backend)
        refusal = quota.admit_manifest(tenant, sizes)
        if refusal:
            record_event(
                "registry.push_refused",
                tenant=tenant,
                outcome=Event.Outcome.FAILURE,
                message=f"Push of {name} by {subject} refused: {refusal}",
                data={"repository": name, "subject": subject},
            )
            raise gate.QuotaExceededError(refusal)
    try:
        answer = gate.forward(path, query, headers, body, backend)
    except gate.GateError:
        if blobs:
            enqueue(tasks.refresh_usage, tenant.pk)
        raise
    if blobs and answer.status >= 300:
        enqueue(tasks.refresh_usage, tenant.pk)
    return answer


def start_upload(path: str, query: str, headers: Any, body: bytes, *, name: str) -> gate.Forwarded:
    """Open a blob upload (or mount a blob) unless the tenant is at its storage quota.

    Every upload the registry accepts is counted when it completes (notifications), so
    once a tenant is at its quota no new upload opens: a tenant can pass its quota by at
    most the blobs it had already started uploading, never fill the disk with blobs no
    manifest references."""
    tenant = Tenant.objects.filter(slug=name.partition("/")[0]).first()
    if tenant is not None:
        allowed, message = quota.can_push(tenant)
        if not allowed:
            raise gate.QuotaExceededError(message)
    return gate.forward(path, query, headers, body, gate.backend_for(headers), method="POST")


# --- the registry's notifications (apps/registry/notifications.py) --------------------------


def ingest_notifications(body: Any, now: datetime | None = None) -> notifications.Outcome:
    """Record every event of an authenticated envelope; each is accepted or refused, and
    the refused ones are reported in the platform's activity."""
    now = now or timezone.now()
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or len(events) > notifications.MAX_EVENTS:
        raise ValueError(
            f"An envelope holds a list `events` of at most {notifications.MAX_EVENTS} events."
        )
    outcome = notifications.Outcome()
    for raw in events:
        event_id = str(raw.get("id", ""))[:100] if isinstance(raw, dict) else ""
        try:
            notifications.ingest_event(raw, now)
            outcome.accepted.append(event_id)
        except notifications.EventRefusedError as exc:
            entry = {"id": event_id, "reason": exc.reason}
            (outcome.ignored if exc.ignored else outcome.refused).append(entry)
    if outcome.refused:
        record_event(
            "registry.notification.refused",
            outcome="failure",
            message=f"{len(outcome.refused)} registry event(s) refused",
            data={"refused": outcome.refused[:20]},
        )
    return outcome


# --- garbage collection -------------------------------------------------------------------
# The script that started the registry runs it (apps/registry/gc.py has why and how);
# Berth measures the disk freed and records it.


def garbage_collect(*, actor: Any) -> bool:
    """Queue a garbage collection (platform admins); False when the queue is down."""
    _require_platform_admin(actor, "runs garbage collection")
    record_event("registry.gc.queued", actor=actor)
    return enqueue(tasks.garbage_collect, actor.pk)


def collect_garbage(*, actor: Any = None) -> gc.GcResult:
    """Run one garbage collection (the registry read-only meanwhile, when it runs) and
    record an Event with the bytes it freed on disk (allocated blocks, before and after)."""
    root = gc.storage_root()
    before = gc.disk_usage(root)
    try:
        output = gc.run_command()
    except (gc.GarbageCollectionError, OSError, subprocess.TimeoutExpired) as exc:
        record_event("registry.gc", actor=actor, outcome="failure", message=str(exc)[:500])
        raise
    result = gc.GcResult(before, gc.disk_usage(root), output)
    record_event(
        "registry.gc",
        actor=actor,
        message=f"Garbage collection freed {result.freed} bytes on disk.",
        data={"before": result.before, "after": result.after, "freed": result.freed},
    )
    return result
