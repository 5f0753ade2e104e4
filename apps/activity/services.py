"""Recording events: every service function calls `record_event` once per change."""

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
    """Write one Event; `obj` gives the object's type, id and name."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return Event.objects.create(
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
