"""The stats socket: CPU, memory, network and block I/O of one container, from the
process's one shared stats stream of that container (`fanout.STATS`)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.utils import timezone

from apps.deployments import live_limits
from apps.deployments.consumers import fanout
from apps.deployments.consumers.base import (
    CLOSE_BUSY,
    CLOSE_ENGINE,
    CLOSE_NOT_RUNNING,
    CLOSE_UNAVAILABLE,
    LiveConsumer,
)
from apps.deployments.models import Container
from apps.deployments.swarm_tasks import prepare_reach
from apps.hosts.engine import EngineError, get_engine, streams
from apps.hosts.engine.driver import EngineDriver


class StatsConsumer(LiveConsumer):
    """CPU, memory, network and block I/O of one container every ~2 seconds."""

    model = Container
    interval = 2.0

    def prepare(self, obj: Container) -> str:
        return prepare_reach(obj, "stats")

    async def begin(self) -> None:
        if self.prepared:  # a Swarm task on a node whose engine Berth cannot reach
            await self.fail(CLOSE_UNAVAILABLE, self.prepared)
            return
        engine = get_engine(self.obj.host)
        try:
            running = await self.in_pool(_running, engine, self.obj.engine_id)
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))
            return
        if not running:
            await self.fail(CLOSE_NOT_RUNNING, "The container is not running.")
            return
        # The user's share counts this socket; the engine stream is the process's one
        # for this container (`fanout.STATS`), shared with every other stats socket.
        self.lease_held = await self.lease(server=False)
        if self.lease_held is None:
            return
        self.subscriber = fanout.StatsSubscriber()
        self.shared = fanout.STATS.subscribe(self.obj.host, self.obj.engine_id, self.subscriber)
        if self.shared is None:
            await self.fail(CLOSE_BUSY, live_limits.SERVER_BUSY)
            return
        self.spawn(self.pump())

    async def in_pool(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def pump(self) -> None:
        latest, ended = self.subscriber.latest, self.subscriber.ended
        while not self.closed:
            await asyncio.sleep(self.interval if latest else 0.2)
            if latest:
                sample = latest.pop()
                await self.send_json({"type": "stats", "at": timezone.now().isoformat(), **sample})
            elif ended.is_set():
                if self.subscriber.error:
                    await self.fail(CLOSE_ENGINE, self.subscriber.error)
                    return
                await self.send_json({"type": "end"})
                await self.shutdown(1000)
                return

    async def release(self) -> None:
        shared = getattr(self, "shared", None)
        if shared is not None:
            self.shared = None
            await asyncio.to_thread(fanout.STATS.unsubscribe, shared, self.subscriber)
        lease = getattr(self, "lease_held", None)
        if lease is not None:
            lease.give_all()


def _running(engine: EngineDriver, container_id: str) -> bool:
    """`streams.container_running`, with the engine client closed after it."""
    try:
        return streams.container_running(engine, container_id)
    finally:
        engine.close()
