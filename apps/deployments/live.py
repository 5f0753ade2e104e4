"""Live updates of stacks: Channels group names and best-effort broadcasting.

Events are stored first (the activity log is the source of truth) and broadcast after
their transaction commits; a socket that missed some catches up from the table. Nothing
here may fail the caller: Redis being down only means the pages learn it a bit later.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Q, QuerySet

from apps.activity.models import Event

log = logging.getLogger(__name__)

STACK_OBJECT_TYPES = ("stack", "service", "container", "revision")
PROGRESS_INTERVAL = 0.25
CATCH_UP_LIMIT = 1000


def stack_group(stack_id: int) -> str:
    return f"stack-{stack_id}"


def event_stack_id(event: Event, obj: Any = None) -> int | None:
    """The stack an Event concerns, or None (tenant, token and platform events)."""
    if event.object_type == "stack" and event.object_id.isdecimal():
        return int(event.object_id)
    stack = (event.data or {}).get("stack")
    if isinstance(stack, int):
        return stack
    return getattr(obj, "stack_id", None)


def serialize_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "action": event.action,
        "outcome": event.outcome,
        "message": event.message,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "actor": event.actor_name,
        "data": event.data,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


def stack_events(stack_id: int, tenant_id: int) -> QuerySet[Event]:
    """Stored events of one stack, oldest first (the catch-up of a reconnecting page)."""
    return (
        Event.objects.filter(tenant_id=tenant_id)
        .filter(Q(object_type="stack", object_id=str(stack_id)) | Q(data__stack=stack_id))
        .order_by("id")
    )


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:  # noqa: BLE001 - Redis down must never fail the caller
        log.warning("live broadcast to %s failed: %s", group, exc)


def broadcast_event(event: Event, obj: Any = None) -> None:
    """After the current transaction commits, tell the stack's sockets about `event`."""
    stack_id = event_stack_id(event, obj)
    if stack_id is None:
        return
    message = {"type": "stack.event", "event": serialize_event(event)}
    transaction.on_commit(lambda: _send_async_safe(stack_group(stack_id), message))


def _send_async_safe(group: str, message: dict[str, Any]) -> None:
    """`async_to_sync` refuses to run inside an event loop thread; use a thread then."""
    try:
        import asyncio

        asyncio.get_running_loop()
    except RuntimeError:
        _send(group, message)
        return
    worker = threading.Thread(target=_send, args=(group, message), daemon=True)
    worker.start()
    worker.join(timeout=2)


class PullProgress:
    """Throttled image pull progress for one stack, as `progress` messages.

    Called for every message of the engine's pull stream; sends at most one message per
    PROGRESS_INTERVAL per image, plus the final one.
    """

    def __init__(self, stack_id: int, image: str) -> None:
        self.stack_id = stack_id
        self.image = image
        self.layers: dict[str, tuple[int, int]] = {}
        self.last_sent = 0.0

    def __call__(self, message: dict[str, Any]) -> None:
        try:
            self._update(message)
        except Exception as exc:  # noqa: BLE001 - progress is decoration, never a failure
            log.debug("pull progress ignored: %s", exc)

    def _update(self, message: dict[str, Any]) -> None:
        layer = str(message.get("id") or "")
        detail = message.get("progressDetail") or {}
        current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
        if layer and total:
            self.layers[layer] = (current, total)
        elif layer and message.get("status") in ("Pull complete", "Already exists"):
            done = self.layers.get(layer, (1, 1))[1]
            self.layers[layer] = (done, done)
        now = time.monotonic()
        if now - self.last_sent < PROGRESS_INTERVAL:
            return
        self.last_sent = now
        self._emit(layer, str(message.get("status") or ""), current, total)

    def _emit(self, layer: str, status: str, current: int, total: int) -> None:
        image_current = sum(c for c, _ in self.layers.values())
        image_total = sum(t for _, t in self.layers.values())
        payload = {
            "type": "progress",
            "stack": self.stack_id,
            "image": self.image,
            "layer": layer,
            "status": status,
            "current": current,
            "total": total,
            "percent": round(current / total * 100, 1) if total else None,
            "image_current": image_current,
            "image_total": image_total,
            "image_percent": round(image_current / image_total * 100, 1) if image_total else None,
        }
        _send(stack_group(self.stack_id), {"type": "stack.progress", "payload": payload})

    def done(self) -> None:
        payload = {
            "type": "progress",
            "stack": self.stack_id,
            "image": self.image,
            "status": "done",
            "percent": 100.0,
            "image_percent": 100.0,
        }
        _send(stack_group(self.stack_id), {"type": "stack.progress", "payload": payload})
