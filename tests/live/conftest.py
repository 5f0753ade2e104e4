"""Live-operation fixtures: the real engine, a deployed stack, websocket clients.

Containers are deployed by the real reconciler (the Container rows are its mirror); the
channel layer is the real Redis layer on a spare database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.deployments import reconciler
from apps.deployments.models import Container
from apps.tenants.models import Membership
from tests.integration.conftest import (  # noqa: F401 - fixtures reused
    docker,
    environment,
    host,
    image,
    make_stack,
)

log = logging.getLogger(__name__)

# The portal's page as a browser opens the socket: its own origin, and the Host it was
# served from (the origin check compares both; "testserver" is in ALLOWED_HOSTS).
ORIGIN = (b"origin", b"http://testserver")
HOST = (b"host", b"testserver")
SAME_ORIGIN = [ORIGIN, HOST]


@pytest.fixture(autouse=True)
def _live_settings(settings):
    redis = os.environ.get("LIVE_REDIS_URL", "redis://127.0.0.1:6379/13")
    # The production read timeout (paas/settings.py): with redis-py's default of 5 s,
    # channels_redis' 5 s BZPOPMIN times out on the client first, and every consumer
    # waiting 5 s for a channel message died with "Timeout reading from ...".
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis, "socket_timeout": 30}]},
        }
    }
    settings.BERTH_LIVE_RECHECK_SECONDS = 1


def deploy(env, name: str, compose: str, **variables: str) -> list[Container]:
    """Deploy a compose stack with the reconciler; its running containers, by replica."""
    stack = make_stack(env, name, compose, variables)
    reconciler.reconcile_stack(stack.pk)
    return list(Container.objects.filter(stack=stack).order_by("service__name", "replica"))


def add_member(env, user, role: str) -> None:
    Membership.objects.update_or_create(tenant=env.tenant, user=user, defaults={"role": role})


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    return [*SAME_ORIGIN, (b"cookie", f"sessionid={cookie}".encode())]


def session_of(headers: list[tuple[bytes, bytes]]) -> str:
    return dict(headers)[b"cookie"].decode().split("=", 1)[1]


def token_headers(raw: str) -> list[tuple[bytes, bytes]]:
    return [*SAME_ORIGIN, (b"authorization", f"Bearer {raw}".encode())]


#: How long the tasks a scenario left behind get to finish once cancelled.
SETTLE_SECONDS = 10


def run(coro: Any) -> Any:
    """`asyncio.run` for one scenario, with its own channel layer and a bounded end.

    Two things in channels_redis hang a test that `asyncio.run` would wait on for ever:
    - the layer object (its receive locks and counters) is cached for the process, so a
      receive cut off by one event loop's end blocks the next loop's receives;
    - a layer receive cancelled twice at once (by the loop's end and by the consumer's
      own clean-up) sometimes swallows the cancellation and goes on reading.
    Daphne runs one loop for its life and cancels a consumer's receive once, so this is
    the tests' problem: each scenario gets a fresh layer, and tasks still running
    SETTLE_SECONDS after the cancellation are reported and left behind.
    """
    channel_layers.backends.clear()
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _settle(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            channel_layers.backends.clear()


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(tasks, timeout=SETTLE_SECONDS))
    for task in stuck:
        log.warning("a task did not finish %ss after its cancellation: %r", SETTLE_SECONDS, task)


def application():
    from paas.asgi import application as app

    return app


async def open_socket(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application(), path, headers=headers)
    connected, _ = await comm.connect(timeout=10)
    assert connected, f"{path} refused the handshake"
    return comm


async def close_code(comm: WebsocketCommunicator, timeout: float = 10) -> int:
    """Read messages until the server closes; its close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await comm.receive_output(timeout=max(deadline - loop.time(), 0.01))
        if message["type"] == "websocket.close":
            await _finish(comm, message.get("code", 1000))
            return message.get("code", 1000)


async def _finish(comm: WebsocketCommunicator, code: int) -> None:
    """Tell the consumer the client is gone, as a browser does after a close, and let it
    finish inside this event loop: a consumer still waiting when `asyncio.run` ends is
    cancelled there, and its clean-up could then wait for ever."""
    with contextlib.suppress(Exception):
        await comm.send_input({"type": "websocket.disconnect", "code": code})
        await comm.wait(timeout=5)


async def receive_json(comm: WebsocketCommunicator, timeout: float = 10) -> dict[str, Any]:
    message = await comm.receive_output(timeout=timeout)
    assert message["type"] == "websocket.send", message
    assert message.get("text") is not None, message
    return json.loads(message["text"])


async def until(comm, predicate, timeout: float = 15) -> list[dict[str, Any]]:
    """JSON messages up to and including the first one `predicate` accepts (terminal
    output frames skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = []
    while True:
        raw = await comm.receive_output(timeout=max(deadline - loop.time(), 0.01))
        assert raw["type"] == "websocket.send", raw
        if raw.get("text") is None:
            continue
        message = json.loads(raw["text"])
        seen.append(message)
        if predicate(message):
            return seen


def say(container: Container, text: str, stream: int = 1) -> None:
    """Make the container's main process print a line now (stdout 1, stderr 2)."""
    docker("exec", container.engine_id, "sh", "-c", f"echo {text} > /proc/1/fd/{stream}")
