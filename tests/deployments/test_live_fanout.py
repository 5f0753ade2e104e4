"""One engine stream per container, shared by every socket watching it, on the real engine.

Two log sockets on one container both get its lines through one engine stream; each
first gets its own tail; the last one leaving closes the stream; a stream that fails
tells every socket why. Stats sockets share their stream the same way.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from apps.deployments.consumers import fanout
from apps.deployments.models import Container
from apps.hosts.engine import streams
from tests.fixtures.engine import docker
from tests.fixtures.live import (
    close_code,
    deploy,
    open_socket,
    run,
    say,
    session_headers,
    until,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

SLEEPER = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


def has_line(text: str):
    return lambda m: any(x["line"] == text for x in m.get("lines", []))


def lines_of(messages) -> list[str]:
    return [x["line"] for m in messages if m["type"] == "logs" for x in m["lines"]]


def settled(check, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_two_log_sockets_share_one_engine_stream_until_the_last_leaves(environment, image, owner):
    (web,) = deploy(environment, "fanout", SLEEPER, IMAGE=image)
    headers = session_headers(owner)
    before = streams.slots_in_use()

    async def scenario():
        first = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        second = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        await asyncio.sleep(0.5)
        assert fanout.LOGS.open_count() == 1
        assert streams.slots_in_use() == before + 1
        await asyncio.to_thread(say, web, "for-both")
        await until(first, has_line("for-both"))
        await until(second, has_line("for-both"))

        await first.disconnect(timeout=5)
        await asyncio.to_thread(say, web, "for-the-second")
        await until(second, has_line("for-the-second"))
        assert fanout.LOGS.open_count() == 1, "one subscriber left: the stream stays"

        await second.disconnect(timeout=5)
        assert await asyncio.to_thread(settled, lambda: fanout.LOGS.open_count() == 0)
        assert await asyncio.to_thread(settled, lambda: streams.slots_in_use() == before)

    run(scenario())


def test_a_new_subscriber_gets_its_own_tail_then_the_shared_lines(environment, image, owner):
    (web,) = deploy(environment, "fanout-tail", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        watcher = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        for index in range(5):
            await asyncio.to_thread(say, web, f"old-{index}")
        await until(watcher, has_line("old-4"))
        late = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=3&timestamps=0", headers)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(say, web, "new-0")
        seen = lines_of(await until(late, has_line("new-0")))
        assert seen == ["old-2", "old-3", "old-4", "new-0"]
        await until(watcher, has_line("new-0"))
        assert fanout.LOGS.open_count() == 1
        await watcher.disconnect(timeout=5)
        await late.disconnect(timeout=5)

    run(scenario())


def test_a_failing_stream_tells_every_socket(environment, image, owner):
    """The row names a container the engine does not have: the shared stream fails on
    opening, and both sockets get the reason and close 4502."""
    (web,) = deploy(environment, "fanout-gone", SLEEPER, IMAGE=image)
    Container.objects.filter(pk=web.pk).update(engine_id="f" * 64)
    headers = session_headers(owner)

    async def scenario():
        sockets = [
            await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers) for _ in range(2)
        ]
        for comm in sockets:
            seen = await until(comm, lambda m: m["type"] == "error")
            assert seen[-1]["message"].startswith(fanout.LOGS.failure), seen[-1]
            assert await close_code(comm) == 4502
        assert await asyncio.to_thread(settled, lambda: fanout.LOGS.open_count() == 0)

    run(scenario())


class Recorder:
    def __init__(self) -> None:
        self.items: list = []
        self.error: str | None = None
        self.done = threading.Event()

    def feed(self, items) -> None:
        self.items.extend(items)

    def end(self, error: str) -> None:
        self.error = error
        self.done.set()


def test_one_failure_reaches_every_subscriber_of_the_stream(environment, image):
    """Both subscribers are attached before the stream opens (the opening waits for a
    gate), so it is one engine stream failing for both."""
    (web,) = deploy(environment, "fanout-fail", SLEEPER, IMAGE=image)
    gate = threading.Event()

    class Gated(fanout.LogFanout):
        def open(self, shared):
            gate.wait(10)
            return super().open(shared)

    hub = Gated()
    first, second = Recorder(), Recorder()
    shared = hub.subscribe(web.host, "f" * 64, first)
    assert hub.subscribe(web.host, "f" * 64, second) is shared
    assert hub.open_count() == 1
    gate.set()
    assert first.done.wait(10) and second.done.wait(10)
    assert first.error == second.error
    assert first.error.startswith(hub.failure) and "f" * 12 in first.error
    assert settled(lambda: hub.open_count() == 0)


def test_stats_sockets_share_one_engine_stream(environment, image, owner):
    (web,) = deploy(environment, "fanout-stats", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        sockets = [await open_socket(f"/ws/containers/{web.pk}/stats/", headers) for _ in range(3)]
        for comm in sockets:
            await until(comm, lambda m: m["type"] == "stats")
        assert fanout.STATS.open_count() == 1
        for comm in sockets:
            await comm.disconnect(timeout=5)
        assert await asyncio.to_thread(settled, lambda: fanout.STATS.open_count() == 0)

    run(scenario())


def test_a_container_stopping_ends_every_socket_following_it(environment, image, owner):
    (web,) = deploy(environment, "fanout-stop", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        sockets = [
            await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers) for _ in range(2)
        ]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(docker, "stop", "-t", "1", web.engine_id)
        for comm in sockets:
            await until(comm, lambda m: m["type"] == "end")
            assert await close_code(comm) == 1000
        assert await asyncio.to_thread(settled, lambda: fanout.LOGS.open_count() == 0)

    run(scenario())
