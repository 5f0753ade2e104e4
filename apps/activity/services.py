"""Recording events: every service function calls `record_event` once per change."""

import logging
from typing import Any

from django.db import models

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


def _broadcast(event: Event, obj: models.Model | None) -> None:
    """Best effort: a live-update failure never fails the change that was recorded."""
    try:
        from apps.deployments.live import broadcast_event

        broadcast_event(event, obj)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning("live broadcast of event %s failed", event.pk)
