"""Recording events: every service function calls `record_event` once per change."""

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.activity.models import Event


def record_event(
    action: str,
    *,
    actor: Any = None,
    tenant: Any = None,
    obj: models.Model | None = None,
    outcome: str = Event.Outcome.SUCCESS,
    message: str = "",
    data: dict | None = None,
) -> Event:
    """Write one Event; `obj` gives the object's type, id and name.

    Events of a stack's children carry `data["stack"]` so the stack's live stream (and its
    catch-up from this table) finds them; once committed, they are broadcast to it.
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    stack_id = getattr(obj, "stack_id", None)
    if stack_id is not None:
        data = {"stack": stack_id, **(data or {})}
    event = Event.objects.create(
        tenant=tenant,
        actor=user,
        actor_name=user.get_username() if user else "system",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        outcome=outcome,
        message=message,
        data=data or {},
    )
    _broadcast(event, obj)
    return event


@cache
def _hook(path: str) -> Callable[[Event, Any], None]:
    return import_string(path)


def _broadcast(event: Event, obj: models.Model | None) -> None:
    """Hand the event to BERTH_EVENT_HOOKS (the stack's live stream, among others).

    Best effort: a hook's failure never fails the change that was recorded.
    """
    for path in settings.BERTH_EVENT_HOOKS:
        try:
            _hook(path)(event, obj)
        except Exception:  # noqa: BLE001
            logging.getLogger(__name__).warning("event hook %s failed for %s", path, event.pk)


def prune_events(
    older_than_days: int | None = None, batch_size: int = 5000, max_batches: int | None = None
) -> int:
    """Delete events older than the retention (BERTH_EVENT_RETENTION_DAYS; 0 keeps all).

    Every tenant's and the platform's alike, oldest first, in batches of `batch_size`
    rows, each its own short transaction: a million old rows never lock the table or
    bloat one transaction while pages keep writing events. `max_batches` bounds one run
    (the next beat carries on). Returns how many rows went.
    """
    days = settings.BERTH_EVENT_RETENTION_DAYS if older_than_days is None else older_than_days
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    old = Event.objects.filter(created_at__lt=cutoff).order_by("created_at", "pk")
    removed, batches = 0, 0
    while max_batches is None or batches < max_batches:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        removed += Event.objects.filter(pk__in=ids).delete()[0]
        batches += 1
    return removed
