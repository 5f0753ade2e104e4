"""Per-user bounds on live streams and log downloads, on the real engine: one user cannot
take every stream of the server, gets a clear refusal, and others are not affected."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.testing import HttpCommunicator
from django.urls import reverse

from apps.deployments import live_limits
from tests.fixtures.live import (
    HOST,
    add_member,
    application,
    close_code,
    deploy,
    open_socket,
    receive_json,
    run,
    session_headers,
    session_of,
    until,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

SLEEPERS = """
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo hello-from-web; sleep 3600"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
"""


@pytest.fixture
def webs(environment, image):
    return deploy(environment, "limits", SLEEPERS, IMAGE=image)


def released(user, seconds: float = 5) -> bool:
    """The user's streams are all given back (readers end a moment after the socket)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not live_limits.STREAMS.held.get(user.pk):
            return True
        time.sleep(0.05)
    return False


async def refused_with(path: str, headers) -> tuple[int, str]:
    comm = await open_socket(path, headers)
    message = await receive_json(comm)
    code = await close_code(comm)
    return code, message.get("message", "")


def test_one_user_cannot_take_every_stream(settings, webs, environment, owner, member):
    settings.BERTH_LIVE_STREAMS_PER_USER = 2
    add_member(environment, member, "member")
    first, second = webs
    mine, theirs = session_headers(owner), session_headers(member)

    async def scenario():
        # A following service log holds one stream per container: both of the owner's.
        merged = await open_socket(f"/ws/services/{first.service_id}/logs/?tail=0", mine)
        assert await merged.receive_nothing(timeout=1)
        code, text = await refused_with(f"/ws/containers/{first.pk}/stats/", mine)
        assert (code, "at most 2") == (4430, text[text.index("at most") :][:9])
        # Somebody else is not affected by the owner's share.
        stats = await open_socket(f"/ws/containers/{second.pk}/stats/", theirs)
        await until(stats, lambda m: m["type"] == "stats")
        await stats.disconnect(timeout=5)
        await merged.disconnect(timeout=5)
        assert await asyncio.to_thread(released, owner)
        again = await open_socket(f"/ws/containers/{first.pk}/stats/", mine)
        await until(again, lambda m: m["type"] == "stats")
        await again.disconnect(timeout=5)

    run(scenario())
    assert released(owner) and released(member)


def test_open_sockets_are_bounded_per_user(settings, webs, owner, member, environment):
    settings.BERTH_LIVE_SOCKETS_PER_USER = 2
    add_member(environment, member, "viewer")
    events = f"/ws/stacks/{webs[0].stack_id}/events/"
    mine, theirs = session_headers(owner), session_headers(member)

    async def scenario():
        opened = [await open_socket(events, mine) for _ in range(2)]
        for comm in opened:
            assert (await receive_json(comm))["type"] == "caught_up"
        code, text = await refused_with(events, mine)
        assert code == 4430 and "at most 2" in text
        other = await open_socket(events, theirs)
        assert (await receive_json(other))["type"] == "caught_up"
        await other.disconnect(timeout=5)
        await opened.pop().disconnect(timeout=5)
        replacement = await open_socket(events, mine)
        assert (await receive_json(replacement))["type"] == "caught_up"
        for comm in [*opened, replacement]:
            await comm.disconnect(timeout=5)

    run(scenario())
    assert not live_limits.SOCKETS.held.get(owner.pk)


def download(path: str, headers) -> dict:
    """A GET through the production ASGI app (daphne's path), body read to the end.

    (HttpCommunicator.get_response cannot read Django's final body message, which
    has no `body` key.)"""

    async def scenario():
        comm = HttpCommunicator(application(), "GET", path, headers=headers)
        await comm.send_input({"type": "http.request", "body": b""})
        response = await comm.receive_output(timeout=20)
        response["body"] = b""
        while True:
            chunk = await comm.receive_output(timeout=20)
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                break
        await comm.wait(timeout=5)
        return response

    return run(scenario())


def test_log_download_counts_against_the_users_streams(settings, webs, owner):
    settings.BERTH_LIVE_STREAMS_PER_USER = 1
    web = webs[0]
    headers = session_headers(owner)
    cookie = [HOST, (b"cookie", f"sessionid={session_of(headers)}".encode())]
    url = reverse("stacks:container_logs_download", args=[web.pk])

    async def holding_a_stream():
        comm = await open_socket(f"/ws/containers/{web.pk}/stats/", headers)
        await until(comm, lambda m: m["type"] == "stats")
        refused = await asyncio.to_thread(download, url, cookie)
        await comm.disconnect(timeout=5)
        return refused

    refused = run(holding_a_stream())
    assert refused["status"] == 429
    assert b"at most 1" in refused["body"]
    assert dict(refused["headers"]).get(b"Retry-After") == b"10"
    assert released(owner)
    answer = download(url, cookie)
    assert answer["status"] == 200
    assert b"hello-from-web" in answer["body"]
    assert released(owner), "the download gave its stream back"


def test_a_download_nobody_reads_gives_its_stream_back_when_closed(settings, webs, owner, client):
    """The WSGI path: Django closes the response even if its body was never read."""
    settings.BERTH_LIVE_STREAMS_PER_USER = 1
    client.force_login(owner)
    url = reverse("stacks:container_logs_download", args=[webs[0].pk])
    unread = client.get(url)
    assert unread.status_code == 200
    assert client.get(url).status_code == 429
    unread.close()
    assert released(owner, seconds=1)
    read = client.get(url)
    assert b"hello-from-web" in b"".join(read.streaming_content)
    read.close()
    assert released(owner, seconds=1)


def test_every_kind_of_socket_gives_its_streams_back(webs, owner):
    first = webs[0]
    headers = session_headers(owner)
    paths = [
        f"/ws/containers/{first.pk}/shell/",
        f"/ws/containers/{first.pk}/stats/",
        f"/ws/containers/{first.pk}/logs/?tail=1",
        f"/ws/services/{first.service_id}/logs/?tail=1",
        f"/ws/services/{first.service_id}/logs/?tail=1&follow=0",
    ]

    async def scenario():
        for path in paths:
            comm = await open_socket(path, headers)
            await until(comm, lambda m: m["type"] in ("ready", "stats", "logs", "end"))
            await comm.disconnect(timeout=5)
            assert await asyncio.to_thread(released, owner), path
        assert not live_limits.SOCKETS.held.get(owner.pk)

    run(scenario())
