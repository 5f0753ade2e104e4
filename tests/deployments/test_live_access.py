"""Who may open which stream: refusals, origins, and streams closing when access ends."""

from __future__ import annotations

import asyncio
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts import services as account_services
from apps.tenants.models import Membership
from tests.conftest import PASSWORD
from tests.fixtures.live import (
    ORIGIN,
    SAME_ORIGIN,
    add_member,
    application,
    close_code,
    deploy,
    open_socket,
    run,
    session_headers,
    session_of,
    token_headers,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

NEW_PASSWORD = "another-horse-battery-7"

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

    return run(scenario())


def test_viewer_may_read_logs_but_not_open_a_shell(web, environment, viewer):
    add_member(environment, viewer, "viewer")
    headers = session_headers(viewer)
    assert refusal(f"/ws/containers/{web.pk}/shell/", headers) == 4403

    async def logs_open():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    run(logs_open())


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
        if connected:
            # Close it here: a log stream left open past the event loop keeps its thread
            # and database connection, and the test's flush then waits for ever.
            await comm.disconnect()
        return connected

    # A page of a tenant's container published on another port of the portal's host.
    assert run(scenario([(b"origin", b"http://testserver:8080")])) is False
    assert run(scenario([(b"origin", b"http://evil.example")])) is False
    assert run(scenario([(b"origin", b"null")])) is False
    assert run(scenario([])) is False
    assert run(scenario([ORIGIN])) is True


def test_a_token_may_connect_without_an_origin_header(web, owner):
    """Scripts (the CLI) authenticate with a token and need not send Origin."""
    _, raw = account_services.create_token(actor=owner, name="cli")

    async def scenario():
        headers = [(b"authorization", f"Bearer {raw}".encode())]
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0", headers)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    run(scenario())


def test_token_in_the_query_string_works(web, owner):
    _, raw = account_services.create_token(actor=owner, name="script")

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/logs/?tail=0&token={raw}", SAME_ORIGIN)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect(timeout=5)

    run(scenario())


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

    return run(scenario())


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


def _all_close_within(paths_and_headers, act, seconds: float = 5) -> list[int]:
    """Open every socket, do `act` (sync, in a thread), and the close code of each."""

    async def scenario():
        comms = [await open_socket(path, headers) for path, headers in paths_and_headers]
        await asyncio.sleep(1)
        await database_sync_to_async(act)()
        start = asyncio.get_running_loop().time()
        codes = [await close_code(comm, timeout=seconds) for comm in comms]
        assert asyncio.get_running_loop().time() - start < seconds
        for comm in comms:
            await comm.disconnect(timeout=5)
        return codes

    return run(scenario())


def _signed_in(headers) -> Client:
    client = Client()
    client.cookies["sessionid"] = session_of(headers)
    return client


def test_password_change_closes_the_users_sockets_in_every_session(web, owner):
    """Changed in one browser: that browser's sockets and another's end; a token's stay."""
    here, elsewhere = session_headers(owner), session_headers(owner)
    _, raw = account_services.create_token(actor=owner, name="cli")

    def change_password():
        response = _signed_in(here).post(
            reverse("account_change_password"),
            {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302, response.content[:500]

    logs = f"/ws/containers/{web.pk}/logs/?tail=0"
    codes = _all_close_within(
        [(logs, here), (f"/ws/stacks/{web.stack_id}/events/", elsewhere), (logs, elsewhere)],
        change_password,
    )
    assert codes == [4401, 4401, 4401]

    async def token_socket_after_the_change():
        comm = await open_socket(logs, token_headers(raw))
        assert await comm.receive_nothing(timeout=3)
        await comm.disconnect(timeout=5)

    run(token_socket_after_the_change())


def test_password_reset_by_mail_closes_the_users_sockets(web, owner):
    headers = session_headers(owner)

    def reset_by_mail():
        client = Client()
        client.post(reverse("account_reset_password"), {"email": owner.email})
        link = re.search(r"https?://[^/\s]+(/\S+/password/reset/key/\S+/)", mail.outbox[-1].body)
        form = client.get(link[1], follow=True)
        response = client.post(
            form.redirect_chain[-1][0] if form.redirect_chain else link[1],
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302, response.content[:500]
        owner.refresh_from_db()
        assert owner.check_password(NEW_PASSWORD)

    assert _all_close_within([(f"/ws/containers/{web.pk}/shell/", headers)], reset_by_mail) == [
        4401
    ]


def test_password_set_by_an_admin_closes_the_users_sockets(web, owner):
    """The admin site, `manage.py changepassword` and a shell all end in set_password."""

    def set_password():
        owner.set_password(NEW_PASSWORD)
        owner.save()

    headers = session_headers(owner)
    assert _all_close_within([(f"/ws/containers/{web.pk}/stats/", headers)], set_password) == [4401]


def test_deactivating_a_user_closes_session_and_token_sockets(web, owner):
    _, raw = account_services.create_token(actor=owner, name="cli")
    sockets = [
        (f"/ws/containers/{web.pk}/shell/", session_headers(owner)),
        (f"/ws/stacks/{web.stack_id}/events/", token_headers(raw)),
    ]

    def deactivate():
        type(owner).objects.filter(pk=owner.pk).update(is_active=False)

    assert _all_close_within(sockets, deactivate) == [4401, 4401]
