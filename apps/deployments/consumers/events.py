"""A stack's events socket: catch-up from the Event table, then live ones from the layer."""

from __future__ import annotations

import contextlib
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async

from apps.deployments import live
from apps.deployments.consumers.base import BadRequestError, LiveConsumer
from apps.deployments.models import Stack


def _events_after(stack: Stack, after: int, limit: int) -> list[dict[str, Any]]:
    events = live.stack_events(stack.pk, stack.tenant_id).filter(id__gt=after)[:limit]
    return [live.serialize_event(e) for e in events]


def _last_event_id(stack: Stack) -> int:
    last = live.stack_events(stack.pk, stack.tenant_id).order_by("-id").first()
    return last.pk if last else 0


class StackEventsConsumer(LiveConsumer):
    """A stack's events: catch-up from the Event table, then live ones, never twice."""

    model = Stack
    channel_layer_alias = DEFAULT_CHANNEL_LAYER

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        after = query.get("after")
        if after is not None and not after.isdecimal():
            raise BadRequestError("after must be an event id (a whole number).")
        return {"after": int(after) if after is not None else None}

    async def begin(self) -> None:
        self.sent: set[int] = set()
        self.group = live.stack_group(self.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.catch_up(self.params["after"])

    async def catch_up(self, after: int | None) -> None:
        if after is None:
            last = await database_sync_to_async(_last_event_id)(self.obj)
            await self.send_json({"type": "caught_up", "last_id": last})
            return
        last = after
        while True:
            events = await database_sync_to_async(_events_after)(
                self.obj, last, live.CATCH_UP_LIMIT
            )
            for event in events:
                await self.send_event(event)
                last = event["id"]
            if len(events) < live.CATCH_UP_LIMIT:
                break
        await self.send_json({"type": "caught_up", "last_id": last})

    async def send_event(self, event: dict[str, Any]) -> None:
        if event["id"] in self.sent:
            return
        self.sent.add(event["id"])
        await self.send_json({"type": "event", "event": event})

    async def on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "resume":
            after = message.get("after")
            if isinstance(after, int) and after >= 0:
                await self.catch_up(after)

    async def stack_event(self, message: dict[str, Any]) -> None:
        await self.send_event(message["event"])

    async def stack_progress(self, message: dict[str, Any]) -> None:
        await self.send_json(message["payload"])

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)
