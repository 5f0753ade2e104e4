"""A stack's events socket: catch-up from the Event table, then live ones from the layer."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER

from apps.accounts.channels_auth import socket_db
from apps.deployments import live
from apps.deployments.consumers.base import BadRequestError, LiveConsumer
from apps.deployments.models import Stack

#: Channel-layer calls (group add, group discard) this process's sockets make at once.
#: Each takes a connection from channels_redis' pool for the loop, which refuses
#: (MaxConnectionsError, the socket closed with 1011) rather than waits beyond 100 in use:
#: 200 event sockets opening together lost 88. Beyond the gate a call waits its turn.
LAYER_CALLS = 20
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def layer_gate() -> asyncio.Semaphore:
    """The running loop's bound on concurrent channel-layer calls (one per loop: the
    tests run each scenario in a loop of its own)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(LAYER_CALLS)
    return gate


def _events_after(stack: Stack, after: int, limit: int) -> list[dict[str, Any]]:
    events = live.stack_events(stack.pk, stack.tenant_id).filter(id__gt=after)[:limit]
    return [live.serialize_event(e) for e in events]


def _last_event_id(stack: Stack) -> int:
    last = live.stack_events(stack.pk, stack.tenant_id).order_by("-id").values_list("id")
    return next(iter(last[:1]), (0,))[0]


class StackEventsConsumer(LiveConsumer):
    """A stack's events: catch-up from the Event table, then live ones, never twice."""

    model = Stack
    channel_layer_alias = DEFAULT_CHANNEL_LAYER

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        after = query.get("after")
        if after is not None and not after.isdecimal():
            raise BadRequestError("after must be an event id (a whole number).")
        return {"after": int(after) if after is not None else None}

    async def before_access(self) -> None:
        """Join the stack's group before the catch-up is read (in the access check's
        database call), so an event committed meanwhile comes live. A handshake without
        credentials is refused anyway and joins nothing; one refused later leaves the
        group on disconnect, and nothing reaches it meanwhile (its handlers run only
        after `connect`, and a closed socket sends nothing)."""
        self.sent: set[int] = set()
        if self.scope.get("session") is None and not self.scope.get("raw_token"):
            return
        self.group = live.stack_group(self.pk)
        async with layer_gate():
            await self.channel_layer.group_add(self.group, self.channel_name)

    def prepare(self, obj: Stack) -> tuple[int | None, list[dict[str, Any]] | int]:
        """The catch-up's first read: the last event's id, or the first page after `after`."""
        after = self.params["after"]
        if after is None:
            return None, _last_event_id(obj)
        return after, _events_after(obj, after, live.CATCH_UP_LIMIT)

    async def begin(self) -> None:
        after, first = self.prepared
        if after is None:
            await self.send_json({"type": "caught_up", "last_id": first})
            return
        await self.catch_up(after, first)

    async def catch_up(self, after: int | None, first: list[dict[str, Any]] | None = None) -> None:
        if after is None:
            last = await socket_db(_last_event_id)(self.obj)
            await self.send_json({"type": "caught_up", "last_id": last})
            return
        last = after
        while True:
            if first is None:
                events = await socket_db(_events_after)(self.obj, last, live.CATCH_UP_LIMIT)
            else:
                events, first = first, None
            for event in events:
                await self.send_event(event)
                last = event["id"]
            if len(events) < live.CATCH_UP_LIMIT:
                break
        await self.send_json({"type": "caught_up", "last_id": last})

    async def send_event(self, event: dict[str, Any]) -> None:
        if self.closed or event["id"] in self.sent:
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
                async with layer_gate():
                    await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)
