"""The stats socket: CPU, memory, network and block I/O of one container."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from django.utils import timezone

from apps.deployments.consumers.base import CLOSE_ENGINE, CLOSE_NOT_RUNNING, LiveConsumer
from apps.deployments.models import Container
from apps.hosts.engine import EngineError, get_engine, streams
from apps.hosts.engine.driver import StatsReader


class StatsConsumer(LiveConsumer):
    """CPU, memory, network and block I/O of one container every ~2 seconds."""

    model = Container
    interval = 2.0

    async def begin(self) -> None:
        engine = get_engine(self.obj.host)
        try:
            running = await self.in_pool(streams.container_running, engine, self.obj.engine_id)
        except EngineError as exc:
            await self.fail(CLOSE_ENGINE, str(exc))
            return
        if not running:
            await self.fail(CLOSE_NOT_RUNNING, "The container is not running.")
            return
        self.lease_held = await self.lease()
        if self.lease_held is None:
            return
        self.latest: deque = deque(maxlen=1)
        self.ended = threading.Event()
        self.stream = engine.stats(self.obj.engine_id)
        streams.POOL.submit(self.read)
        self.spawn(self.pump())

    async def in_pool(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def read(self) -> None:
        try:
            for sample in self.stream.samples():
                self.latest.append(sample)
        except EngineError:
            pass
        finally:
            self.ended.set()
            self.lease_held.give()

    async def pump(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.interval if self.latest else 0.2)
            if self.latest:
                sample = self.latest.pop()
                await self.send_json({"type": "stats", "at": timezone.now().isoformat(), **sample})
            elif self.ended.is_set():
                await self.send_json({"type": "end"})
                await self.shutdown(1000)
                return

    async def release(self) -> None:
        stream = getattr(self, "stream", None)
        if stream is not None:
            self.stream = None
            await asyncio.get_running_loop().run_in_executor(None, _close_stats, stream)


def _close_stats(stream: StatsReader) -> None:
    stream.close()
    stream.engine.close()
