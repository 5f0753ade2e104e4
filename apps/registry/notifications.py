"""The registry's notifications: pushes, pulls and deletes, counted per repository and day.

The registry POSTs one envelope per event (distribution 2.8), with the header
`Authorization: Bearer <shared secret>` that Berth rendered into its config.yml. A request
without that secret is forged and refused (401) before its body is read.

Replays are refused per event: an event id already stored, or a timestamp outside
BERTH_REGISTRY_EVENT_WINDOW seconds of now, is not counted (`services.ingest_notifications`
takes an envelope and records the refusals in the activity). The HTTP answer stays 200
with the refused ids in the body, because the registry retries every non-2xx delivery
forever and blocks the events queued behind it: a genuine retry (our 200 got lost) cannot
be told from a replay, and refusing it with an error would wedge the registry's queue.

What counts as "a pull": docker resolves a tag with HEAD (a pull event naming the tag),
then GETs the manifest by digest. One image pull is therefore the manifest event naming a
tag, or a by-digest GET with no by-tag lookup of the same digest from the same client
address in the minute before (`docker pull name@sha256:...`). Layer existence checks
(HEAD on a blob) move no data and are ignored, like Berth's own reads (subject
`berth-admin`: usage refresh, browsing), which are not a user's pulls.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.activity.services import record_event
from apps.core.queue import enqueue_on_commit
from apps.registry import config
from apps.registry.client import ADMIN_SUBJECT
from apps.registry.models import RegistryEvent, Repository, TenantRegistryQuota
from apps.tenants.models import Tenant

MANIFEST_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)
ACTIONS = {choice.value for choice in RegistryEvent.Action}
MOUNT = "mount"  # a cross-repository blob mount: counted in storage, not recorded
DIGEST_PULL_WINDOW = timedelta(seconds=60)
MAX_EVENTS = 100


def event_window() -> timedelta:
    return timedelta(seconds=settings.BERTH_REGISTRY_EVENT_WINDOW)


def is_authentic(authorization: str) -> bool:
    """Does the Authorization header carry the installation's shared secret?"""
    expected = f"Bearer {config.notification_secret()}"
    return hmac.compare_digest((authorization or "").encode(), expected.encode())


@dataclass
class Outcome:
    accepted: list[str] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "ignored": self.ignored, "refused": self.refused}


class EventRefusedError(Exception):
    """An event not counted; `ignored` marks the harmless ones (existence checks)."""

    def __init__(self, reason: str, ignored: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.ignored = reason, ignored

    def __reduce__(self):  # Celery pickles errors: keep `ignored` too
        return (type(self), (self.reason, self.ignored))


@dataclass(frozen=True)
class Parsed:
    event_id: str
    action: str
    timestamp: datetime
    tenant: Tenant
    path: str  # repository name under the namespace
    tag: str
    digest: str
    size: int
    media_type: str
    method: str
    actor: str
    addr: str

    @property
    def is_manifest(self) -> bool:
        return self.media_type in MANIFEST_TYPES


def _text(data: Any, key: str, limit: int) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return str(value)[:limit] if value is not None else ""


def parse_event(raw: Any, now: datetime) -> Parsed:
    """Validate one event of the envelope; EventRefusedError says why it is not counted."""
    if not isinstance(raw, dict):
        raise EventRefusedError("not an object")
    event_id, action = _text(raw, "id", 100), _text(raw, "action", 20)
    if not event_id:
        raise EventRefusedError("no id")
    if action not in ACTIONS and action != MOUNT:
        raise EventRefusedError(f"action {action or '?'} is not recorded", ignored=True)
    timestamp = parse_datetime(_text(raw, "timestamp", 64))
    if timestamp is None or timestamp.tzinfo is None:
        raise EventRefusedError("no valid timestamp")
    if abs(now - timestamp) > event_window():
        raise EventRefusedError("timestamp outside the accepted window (replayed?)")
    target, request = raw.get("target") or {}, raw.get("request") or {}
    repository = _text(target, "repository", 255)
    namespace, _, path = repository.partition("/")
    tenant = Tenant.objects.filter(slug=namespace).first() if path else None
    if tenant is None:
        raise EventRefusedError(f"repository {repository or '?'} is in no tenant's namespace")
    method = _text(request, "method", 10).upper()
    media_type = _text(target, "mediaType", 200)
    if method == "HEAD" and media_type not in MANIFEST_TYPES:
        raise EventRefusedError("layer existence check", ignored=True)
    if action == MOUNT:
        _count_mounted_blob(tenant, target, media_type)
    actor = _text(raw.get("actor"), "name", 200)
    if actor == ADMIN_SUBJECT and action == RegistryEvent.Action.PULL:
        raise EventRefusedError("Berth's own read (usage, browsing)", ignored=True)
    try:
        size = max(0, int(target.get("size") or target.get("length") or 0))
    except (TypeError, ValueError):
        size = 0
    return Parsed(
        event_id=event_id,
        action=action,
        timestamp=timestamp,
        tenant=tenant,
        path=path,
        tag=_text(target, "tag", 128),
        digest=_text(target, "digest", 100),
        size=size,
        media_type=media_type,
        method=method,
        actor=actor,
        addr=_text(request, "addr", 100),
    )


def _count_mounted_blob(tenant: Tenant, target: dict, media_type: str) -> None:
    """A blob mounted from another repository (the docker client does this instead of an
    upload when the registry holds the layer already) now belongs to this tenant's
    repository too: it counts in the tenant's storage like an upload. Not recorded as a
    push or a pull."""
    if media_type not in MANIFEST_TYPES:
        from apps.registry import quota

        try:
            size = max(0, int(target.get("size") or target.get("length") or 0))
        except (TypeError, ValueError):
            size = 0
        quota.note_uploaded_blob(tenant, _text(target, "digest", 100), size)
    raise EventRefusedError("blob mounted from another repository: counted", ignored=True)


def _client_ip(addr: str) -> str:
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def _is_counted(event: Parsed, repository: Repository | None) -> bool:
    if event.action == RegistryEvent.Action.DELETE:
        return True  # a manifest (or tag) deleted: storage changes
    if not event.is_manifest:
        return False
    if event.action == RegistryEvent.Action.PUSH:
        return event.method in ("PUT", "")
    if event.tag:
        return True
    if event.method != "GET":
        return False
    recent = RegistryEvent.objects.filter(
        tenant=event.tenant,
        repository=repository,
        action=RegistryEvent.Action.PULL,
        digest=event.digest,
        counted=True,
        timestamp__gte=event.timestamp - DIGEST_PULL_WINDOW,
        source_addr__startswith=_client_ip(event.addr) + ":",
    ).exclude(tag="")
    return not recent.exists()


def _transferred(event: Parsed) -> int:
    """Bytes a user moved: none for HEAD checks or for Berth's own reads."""
    if event.actor == ADMIN_SUBJECT or event.method not in ("GET", "PUT", "PATCH"):
        return 0
    return event.size


def _repository_for(event: Parsed) -> Repository | None:
    if event.action == RegistryEvent.Action.PUSH:
        repository, _ = Repository.objects.get_or_create(tenant=event.tenant, name=event.path)
        return repository
    return Repository.objects.filter(tenant=event.tenant, name=event.path).first()


def ingest_event(raw: Any, now: datetime) -> RegistryEvent:
    """Store one event and update the counters; EventRefusedError when it is not counted."""
    event = parse_event(raw, now)
    with transaction.atomic():
        repository = _repository_for(event)
        counted = _is_counted(event, repository)
        try:
            with transaction.atomic():
                row = RegistryEvent.objects.create(
                    tenant=event.tenant,
                    repository=repository,
                    action=event.action,
                    tag=event.tag,
                    digest=event.digest,
                    size=event.size,
                    actor=event.actor,
                    event_id=event.event_id,
                    timestamp=event.timestamp,
                    source_addr=event.addr,
                    media_type=event.media_type,
                    counted=counted,
                    transferred=_transferred(event),
                )
        except IntegrityError as exc:
            raise EventRefusedError("event id already received (replayed)") from exc
        _apply(row, repository)
    return row


def _apply(row: RegistryEvent, repository: Repository | None) -> None:
    """Counters, storage and alerts that follow from one stored event."""
    if repository is not None and row.counted:
        if row.action == RegistryEvent.Action.PULL:
            Repository.objects.filter(pk=repository.pk).update(pull_count=F("pull_count") + 1)
            check_pull_alert(repository, row.timestamp)
        elif row.action == RegistryEvent.Action.PUSH:
            Repository.objects.filter(pk=repository.pk).update(push_count=F("push_count") + 1)
    if row.action == RegistryEvent.Action.PUSH and row.media_type not in MANIFEST_TYPES:
        from apps.registry import quota

        quota.note_uploaded_blob(row.tenant, row.digest, row.size)
    if row.counted and row.action in (RegistryEvent.Action.PUSH, RegistryEvent.Action.DELETE):
        from apps.registry import tasks

        enqueue_on_commit(tasks.refresh_usage, row.tenant_id)


def pulls_on_day(repository: Repository, moment: datetime) -> int:
    day = timezone.localtime(moment).date()
    return RegistryEvent.objects.filter(
        repository=repository,
        action=RegistryEvent.Action.PULL,
        counted=True,
        timestamp__date=day,
    ).count()


def check_pull_alert(repository: Repository, moment: datetime) -> bool:
    """Alert the tenant (an Event) the first time a repository's pulls of the day pass
    the tenant's threshold; True when an alert was raised now."""
    threshold = (
        TenantRegistryQuota.objects.filter(tenant_id=repository.tenant_id)
        .values_list("pull_alert_threshold", flat=True)
        .first()
    )
    if not threshold:
        return False
    pulls = pulls_on_day(repository, moment)
    if pulls != threshold + 1:
        return False
    record_event(
        "registry.pull_alert",
        tenant=repository.tenant,
        obj=repository,
        message=f"{repository.full_name} was pulled {pulls} times today, "
        f"above the alert threshold of {threshold}.",
        data={"pulls": pulls, "threshold": threshold, "day": str(moment.date())},
    )
    return True
