"""Log tails over websockets against the real engine: late lines, stdout/stderr apart,
merge order across containers, and the bound under a flood."""

from __future__ import annotations

import asyncio

import pytest

from apps.deployments.consumers import LOG_BATCH, LOG_WINDOW
from tests.fixtures.live import (
    close_code,
    deploy,
    open_socket,
    receive_json,
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
    deploy:
      replicas: ${REPLICAS:-1}
"""

FLOOD = """
services:
  noisy:
    image: ${IMAGE}
    command: ["sh", "-c", "yes flood-line-0123456789-0123456789-0123456789"]
    stop_grace_period: 1s
"""


def lines_of(messages):
    return [line for m in messages if m["type"] == "logs" for line in m["lines"]]


def test_a_line_printed_after_the_socket_opened_arrives(environment, image, owner):
    (web,) = deploy(environment, "tail", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=10", headers)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(say, web, "printed-later")
        await asyncio.to_thread(say, web, "to-stderr", 2)
        seen = await until(
            comm, lambda m: any(x["line"] == "to-stderr" for x in m.get("lines", []))
        )
        got = {x["line"]: x for x in lines_of(seen)}
        assert got["printed-later"]["stream"] == "stdout"
        assert got["to-stderr"]["stream"] == "stderr"
        assert got["printed-later"]["ts"].startswith("20")
        assert "container" not in got["printed-later"]
        await comm.disconnect(timeout=5)

    run(scenario())


def test_non_follow_returns_the_tail_then_ends(environment, image, owner):
    (web,) = deploy(environment, "nofollow", SLEEPER, IMAGE=image)
    for i in range(5):
        say(web, f"line-{i}")
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(
            f"/ws/containers/{web.pk}/logs/?follow=0&tail=3&timestamps=0", headers
        )
        seen = await until(comm, lambda m: m["type"] == "end")
        lines = lines_of(seen)
        assert [x["line"] for x in lines] == ["line-2", "line-3", "line-4"]
        assert all("ts" not in x for x in lines)
        assert await close_code(comm) == 1000

    run(scenario())


def test_service_logs_merge_containers_in_time_order(environment, image, owner):
    first, second = deploy(environment, "merge", SLEEPER, IMAGE=image, REPLICAS="2")
    order = [(first, "m1"), (second, "m2"), (first, "m3"), (second, "m4"), (first, "m5")]
    headers = session_headers(owner)

    async def scenario():
        live = await open_socket(f"/ws/services/{first.service_id}/logs/?tail=0", headers)
        await asyncio.sleep(0.5)
        for container, text in order:
            await asyncio.to_thread(say, container, text)
            await asyncio.sleep(0.05)
        seen = await until(live, lambda m: any(x["line"] == "m5" for x in m.get("lines", [])))
        merged = [(x["container_id"], x["line"]) for x in lines_of(seen)]
        assert merged == [(c.pk, t) for c, t in order]
        await live.disconnect(timeout=5)

        done = await open_socket(f"/ws/services/{first.service_id}/logs/?follow=0", headers)
        seen = await until(done, lambda m: m["type"] == "end")
        lines = lines_of(seen)
        assert [(x["container"], x["line"]) for x in lines] == [(c.name, t) for c, t in order]
        timestamps = [x["ts"] for x in lines]
        assert timestamps == sorted(timestamps)

    run(scenario())


def test_a_flood_to_a_client_that_does_not_read_stays_bounded(environment, image, owner):
    (noisy,) = deploy(environment, "flood", FLOOD, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{noisy.pk}/logs/?tail=0", headers)
        await asyncio.sleep(4)  # the container writes a great many lines meanwhile
        queued = comm.output_queue.qsize()
        assert queued <= LOG_WINDOW + 2, queued
        messages = [await receive_json(comm) for _ in range(queued)]
        batches = [m for m in messages if m["type"] == "logs"]
        assert len(batches) == LOG_WINDOW
        assert all(len(b["lines"]) <= LOG_BATCH for b in batches)
        await comm.send_json_to({"type": "ack", "seq": batches[-1]["seq"]})
        seen = await until(comm, lambda m: m["type"] == "dropped")
        assert seen[-1]["count"] > 0
        after = await receive_json(comm)
        assert after["type"] == "logs" and after["seq"] == batches[-1]["seq"] + 1
        await comm.disconnect(timeout=5)

    run(scenario())


def test_a_quiet_container_keeps_its_log_stream_past_the_engine_timeout(
    environment, image, owner, settings
):
    """The engine's read timeout (BERTH_ENGINE_TIMEOUT) is for requests, not for a
    followed log: a container silent for longer still gets its next line through."""
    settings.BERTH_ENGINE_TIMEOUT = 1
    (web,) = deploy(environment, "quiet", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        # Longer than the engine timeout; whatever the container printed at its start
        # may arrive meanwhile, and is read below with the rest.
        await asyncio.sleep(3)
        await asyncio.to_thread(say, web, "after-the-silence")
        seen = await until(
            comm, lambda m: any(x["line"] == "after-the-silence" for x in m.get("lines", []))
        )
        assert all(m["type"] == "logs" for m in seen)
        await comm.disconnect(timeout=5)

    run(scenario())
