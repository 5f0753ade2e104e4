"""The stack event stream: live events after commit, catch-up after a reconnect with
nothing twice and nothing lost, pull progress; no Docker needed."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from apps.activity.services import record_event
from apps.deployments import live
from apps.deployments.models import Container, Service, Stack
from apps.hosts.models import Host
from apps.tenants.models import Membership
from tests.fixtures.live import close_code, open_socket, run, session_headers, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("live_settings")]


@pytest.fixture
def shop_stack(tenant_a, owner):
    env = tenant_a.environments.order_by("pk").first()
    return Stack.objects.create(tenant=tenant_a, environment=env, name="shop")


@database_sync_to_async
def happen(shop_stack: Stack, action: str, obj=None) -> int:
    return record_event(action, actor=None, tenant=shop_stack.tenant, obj=obj or shop_stack).pk


def test_catch_up_after_reconnect_sends_each_event_once(shop_stack, owner):
    headers = session_headers(owner)
    before = record_event("stack.deploy", tenant=shop_stack.tenant, obj=shop_stack).pk

    async def scenario():
        comm = await open_socket(f"/ws/stacks/{shop_stack.pk}/events/?after=0", headers)
        seen = await until(comm, lambda m: m["type"] == "caught_up")
        assert [m["event"]["id"] for m in seen[:-1]] == [before]
        assert seen[-1]["last_id"] == before
        first = await happen(shop_stack, "stack.state")
        got = await until(comm, lambda m: m["type"] == "event")
        assert got[-1]["event"]["id"] == first and got[-1]["event"]["action"] == "stack.state"
        await comm.disconnect(timeout=5)

        missed = [await happen(shop_stack, f"stack.step{i}") for i in range(3)]
        comm = await open_socket(f"/ws/stacks/{shop_stack.pk}/events/?after={first}", headers)
        seen = await until(comm, lambda m: m["type"] == "caught_up")
        later = await happen(shop_stack, "stack.after_reconnect")
        seen += await until(comm, lambda m: m.get("event", {}).get("id") == later)
        ids = [m["event"]["id"] for m in seen if m["type"] == "event"]
        assert ids == [*missed, later]
        # an explicit resume re-sends nothing this socket already delivered
        await comm.send_json_to({"type": "resume", "after": first})
        resumed = await until(comm, lambda m: m["type"] == "caught_up")
        assert resumed == [{"type": "caught_up", "last_id": later}]
        if not await comm.receive_nothing(timeout=0.5):
            raise AssertionError(await comm.receive_output())
        await comm.disconnect(timeout=5)

    run(scenario())


def test_child_events_and_other_stacks(shop_stack, owner, tenant_a):
    other = Stack.objects.create(tenant=tenant_a, environment=shop_stack.environment, name="other")
    host = Host.objects.create(name="h", endpoint="unix:///nowhere.sock")
    service = Service.objects.create(stack=shop_stack, name="web", image="x")
    container = Container.objects.create(
        stack=shop_stack, service=service, host=host, engine_id="abc", name="shop-web-1"
    )
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/stacks/{shop_stack.pk}/events/", headers)
        await until(comm, lambda m: m["type"] == "caught_up")
        await happen(other, "stack.state")
        mine = await happen(shop_stack, "container.restart", obj=container)
        seen = await until(comm, lambda m: m["type"] == "event")
        assert [m["event"]["id"] for m in seen] == [mine]
        assert seen[0]["event"]["data"]["stack"] == shop_stack.pk
        await comm.disconnect(timeout=5)

    run(scenario())


def layer(name: str, current: int, total: int) -> dict:
    detail = {"current": current, "total": total}
    return {"id": name, "status": "Downloading", "progressDetail": detail}


def test_pull_progress_is_throttled_and_reaches_the_stack(shop_stack, owner, monkeypatch):
    monkeypatch.setattr(live, "PROGRESS_INTERVAL", 0.0)
    headers = session_headers(owner)

    def pull():
        progress = live.PullProgress(shop_stack.pk, "redis:7")
        progress(layer("l1", 5, 10))
        progress(layer("l2", 0, 10))
        progress.done()

    async def scenario():
        comm = await open_socket(f"/ws/stacks/{shop_stack.pk}/events/", headers)
        await until(comm, lambda m: m["type"] == "caught_up")
        await asyncio.to_thread(pull)
        seen = await until(comm, lambda m: m.get("status") == "done")
        assert seen[0]["type"] == "progress" and seen[0]["image"] == "redis:7"
        assert seen[0]["percent"] == 50.0
        assert seen[1]["image_percent"] == 25.0
        await comm.disconnect(timeout=5)

    run(scenario())


def test_redis_down_does_not_fail_the_change(shop_stack, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    event = record_event("stack.deploy", tenant=shop_stack.tenant, obj=shop_stack)
    assert event.pk


def test_bad_after_is_refused(shop_stack, owner):
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/stacks/{shop_stack.pk}/events/?after=x", headers)
        return await close_code(comm)

    assert run(scenario()) == 4400


def test_a_removed_member_loses_the_socket_and_the_others_keep_theirs(shop_stack, owner, member):
    """All open sockets are re-checked together: the verdict is still each socket's own."""
    path = f"/ws/stacks/{shop_stack.pk}/events/"
    owners = session_headers(owner)
    members = session_headers(member)

    async def scenario():
        kept = [await open_socket(path, owners) for _ in range(2)]
        lost = await open_socket(path, members)
        for comm in [*kept, lost]:
            await until(comm, lambda m: m["type"] == "caught_up")
        await database_sync_to_async(
            Membership.objects.filter(user=member, tenant=shop_stack.tenant).delete
        )()
        assert await close_code(lost) == 4403
        event = await happen(shop_stack, "stack.after_removal")
        for comm in kept:
            got = await until(comm, lambda m: m["type"] == "event")
            assert got[-1]["event"]["id"] == event
            await comm.disconnect(timeout=5)

    run(scenario())
