"""Who may open which stream: refusals, origins, and streams closing when access ends."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session

from apps.accounts import services as account_services
from apps.tenants.models import Membership
from tests.live.conftest import (
    ORIGIN,
    SAME_ORIGIN,
    add_member,
    application,
    close_code,
    deploy,
    open_socket,
    session_headers,
    session_of,
    token_headers,
)

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

SLEEPER = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


@pytest.fixture
def web(environment, image):
    (container,) = deploy(environment, "access", SLEEPER, IMAGE=image)
    return container


def refusal(path: str, headers) -> int:
    async def scenario():
        comm = await open_socket(path, headers)
        return await close_code(comm)

    return asyncio.run(scenario())


def test_viewer_may_read_logs_but_not_open_a_shell(web, environment, viewer):
    add_member(environment, viewer, "viewer")
    headers = session_headers(viewer)
    assert refusal(f"/ws/containers/{web.pk}/shell/", headers) == 4403

    async def logs_open():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    asyncio.run(logs_open())


def test_read_only_token_of_a_member_may_not_open_a_shell(web, environment, member):
    add_member(environment, member, "member")
    _, raw = account_services.create_token(actor=member, name="ro", read_only=True)
    assert refusal(f"/ws/containers/{web.pk}/shell/", token_headers(raw)) == 4403


def test_other_tenant_and_missing_ids_are_refused_alike(web, tenant_b, outsider):
    headers = session_headers(outsider)
    for kind in ("logs", "shell", "stats"):
        assert refusal(f"/ws/containers/{web.pk}/{kind}/", headers) == 4404
        assert refusal(f"/ws/containers/{web.pk + 10_000}/{kind}/", headers) == 4404
    assert refusal(f"/ws/services/{web.service_id}/logs/", headers) == 4404
    assert refusal(f"/ws/stacks/{web.stack_id}/events/", headers) == 4404


def test_anonymous_and_bad_tokens_are_refused(web):
    assert refusal(f"/ws/containers/{web.pk}/logs/", SAME_ORIGIN) == 4401
    assert refusal(f"/ws/stacks/{web.stack_id}/events/", SAME_ORIGIN) == 4401
    bogus = token_headers("berth_not-a-real-token")
    assert refusal(f"/ws/containers/{web.pk}/shell/", bogus) == 4401


def test_foreign_or_missing_origin_is_refused_before_the_handshake(web, owner):
    headers = [h for h in session_headers(owner) if h[0] != b"origin"]

    async def scenario(extra):
        comm = WebsocketCommunicator(
            application(), f"/ws/containers/{web.pk}/logs/", headers=headers + extra
        )
        connected, _ = await comm.connect(timeout=5)
        return connected

    # A page of a tenant's container published on another port of the portal's host.
    assert asyncio.run(scenario([(b"origin", b"http://testserver:8080")])) is False
    assert asyncio.run(scenario([(b"origin", b"http://evil.example")])) is False
    assert asyncio.run(scenario([(b"origin", b"null")])) is False
    assert asyncio.run(scenario([])) is False
    assert asyncio.run(scenario([ORIGIN])) is True


def test_a_token_may_connect_without_an_origin_header(web, owner):
    """Scripts (the CLI) authenticate with a token and need not send Origin."""
    _, raw = account_services.create_token(actor=owner, name="cli")

    async def scenario():
        headers = [(b"authorization", f"Bearer {raw}".encode())]
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    asyncio.run(scenario())


def test_token_in_the_query_string_works(web, owner):
    _, raw = account_services.create_token(actor=owner, name="script")

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0&token={raw}", SAME_ORIGIN)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    asyncio.run(scenario())


def _closes_within(path, headers, revoke, seconds: float = 5) -> int:
    async def scenario():
        comm = await open_socket(path, headers)
        await asyncio.sleep(1)  # open and streaming (a shell has sent "ready" and a prompt)
        await database_sync_to_async(revoke)()
        start = asyncio.get_running_loop().time()
        code = await close_code(comm, timeout=seconds)
        assert asyncio.get_running_loop().time() - start < seconds
        await comm.disconnect(timeout=5)
        return code

    return asyncio.run(scenario())


def test_revoked_token_closes_an_open_shell(web, owner):
    token, raw = account_services.create_token(actor=owner, name="shell")
    code = _closes_within(
        f"/ws/containers/{web.pk}/shell/",
        token_headers(raw),
        lambda: account_services.revoke_token(actor=owner, token=token),
    )
    assert code == 4401


def test_logout_closes_an_open_log_stream(web, owner):
    headers = session_headers(owner)
    key = session_of(headers)
    code = _closes_within(
        f"/ws/containers/{web.pk}/logs/?tail=0",
        headers,
        lambda: Session.objects.filter(session_key=key).delete(),
    )
    assert code == 4401


def test_removed_membership_closes_an_open_stats_stream(web, environment, member):
    add_member(environment, member, "member")
    code = _closes_within(
        f"/ws/containers/{web.pk}/stats/",
        session_headers(member),
        lambda: Membership.objects.filter(user=member, tenant=environment.tenant).delete(),
    )
    assert code == 4403
