"""Queueing work survives a stopped broker: the request goes on, the work waits."""

import socket
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from apps.core.queue import enqueue


def noop() -> None:
    """A task body; these tests only send, nothing runs it."""


def closed_port() -> int:
    """A loopback port with nobody listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_with_broker(url: str) -> Celery:
    """A Celery app of the test's own that never becomes the current app: the project's
    tasks (`shared_task` proxies) follow the current app, so a current test app would
    send every later task of this process to its broker (the browser tests' worker then
    never saw the stacks they created)."""
    app = Celery("berth-test", broker=url, set_as_current=False)
    app.conf.broker_connection_timeout = 1
    app.conf.broker_transport_options = {"socket_connect_timeout": 1, "max_retries": 1}
    return app


def test_enqueue_reports_a_stopped_broker_instead_of_raising():
    app = app_with_broker(f"redis://127.0.0.1:{closed_port()}/0")
    task = app.task(name="berth.test.noop")(noop)
    assert enqueue(task) is False


def test_enqueue_sends_to_a_running_broker(settings):
    app = app_with_broker(settings.REDIS_URL.rsplit("/", 1)[0] + "/15")
    task = app.task(name="berth.test.noop")(noop)
    try:
        assert enqueue(task) is True
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()


# --- tenant slots (real Redis) --------------------------------------------------------------


def fresh_tenant_id() -> int:
    import random

    return random.randint(10**9, 2 * 10**9)  # noqa: S311 - a key nobody else uses


def test_a_tenant_holds_at_most_its_slots_and_gives_them_back(settings):
    from apps.core.queue import tenant_slot

    settings.BERTH_TENANT_WORKER_SLOTS = 2
    tenant, other = fresh_tenant_id(), fresh_tenant_id()
    with tenant_slot(tenant, ttl=30) as first, tenant_slot(tenant, ttl=30) as second:
        assert first and second
        with tenant_slot(tenant, ttl=30) as third:
            assert third is False
        with tenant_slot(other, ttl=30) as elsewhere:
            assert elsewhere  # another tenant is not bound by this one
    with tenant_slot(tenant, ttl=30) as again:
        assert again


def test_a_slot_is_given_back_when_the_work_fails(settings):
    from apps.core.queue import tenant_slot

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant = fresh_tenant_id()
    try:
        with tenant_slot(tenant, ttl=30) as held:
            assert held
            raise RuntimeError("engine call failed")
    except RuntimeError:
        pass
    with tenant_slot(tenant, ttl=30) as held:
        assert held


def test_a_killed_holders_slot_expires_after_its_ttl(settings):
    import time

    import redis

    from apps.core.queue import slots_key, tenant_slot

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant = fresh_tenant_id()
    slot = tenant_slot(tenant, ttl=0.5)
    assert slot.__enter__() is True  # never exited: the worker was killed
    with tenant_slot(tenant, ttl=30) as held:
        assert held is False
    time.sleep(0.7)
    with tenant_slot(tenant, ttl=30) as held:
        assert held is True
    redis.Redis.from_url(settings.REDIS_URL).delete(slots_key(tenant))


def test_without_redis_the_work_runs_unbounded(settings):
    from apps.core.queue import tenant_slot

    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with tenant_slot(fresh_tenant_id(), ttl=30) as held:
        assert held is True


# --- parked tasks (real Redis, the real broker) -------------------------------------------


@pytest.fixture
def own_queue(settings) -> Iterator[str]:
    """Tasks sent by this test go to a queue of its own (no worker reads it), emptied after;
    the test's installation id keeps its slot and waiting keys apart from other runs."""
    import redis

    from paas.celery import app

    name = f"parked-{uuid.uuid4().hex[:8]}"
    settings.BERTH_INSTALLATION_ID = name
    old, app.conf.task_default_queue = app.conf.task_default_queue, name
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        yield name
    finally:
        app.conf.task_default_queue = old
        for key in client.scan_iter(f"*{name}*"):
            client.delete(key)
        for key in client.scan_iter("_kombu.binding.*"):
            for member in client.smembers(key):
                if name.encode() in member:
                    client.srem(key, member)


def sent(settings, queue: str) -> list[tuple[str, str]]:
    """(task name, args) of the messages waiting in the broker's `queue`, oldest first."""
    import json

    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    messages = [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]


def waiting(settings, tenant: int) -> list[dict]:
    import json

    import redis

    from apps.core.queue import waiting_key

    client = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(raw) for raw in client.lrange(waiting_key(tenant), 0, -1)]


def test_a_task_at_the_bound_is_parked_once_and_sent_when_a_slot_is_given_back(settings, own_queue):
    from apps.core.queue import parked, tenant_slot

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant = fresh_tenant_id()
    first, second = parked("berth.test.work", (1,)), parked("berth.test.work", (2,))
    with tenant_slot(tenant, ttl=30) as held:
        assert held
        for task in (first, first, second):  # the same call parked twice waits once
            with tenant_slot(tenant, ttl=30, park=task) as other:
                assert other is False
        assert [t["args"] for t in waiting(settings, tenant)] == [[1], [2]]
        assert sent(settings, own_queue) == []  # nothing re-sent while the slot is held

    # Giving the slot back sends the oldest parked task, and only it (one slot, one task).
    assert sent(settings, own_queue) == [("berth.test.work", "[1]")]
    assert [t["args"] for t in waiting(settings, tenant)] == [[2]]
    with tenant_slot(tenant, ttl=30) as held:  # the woken task's turn
        assert held
    assert sent(settings, own_queue) == [("berth.test.work", "[1]"), ("berth.test.work", "[2]")]
    assert waiting(settings, tenant) == []


def test_a_parked_task_runs_at_once_when_a_slot_is_free(settings, own_queue):
    from apps.core.queue import parked, tenant_slot

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant = fresh_tenant_id()
    with tenant_slot(tenant, ttl=30, park=parked("berth.test.work", (1,))) as held:
        assert held  # a free slot: the caller runs the work, nothing is parked
        assert waiting(settings, tenant) == []
    assert sent(settings, own_queue) == []


def test_the_sweep_wakes_what_a_killed_holder_left_parked(settings, own_queue):
    import time

    from apps.core.queue import parked, tenant_slot, wake_parked

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant, other = fresh_tenant_id(), fresh_tenant_id()
    killed = tenant_slot(tenant, ttl=0.5)
    assert killed.__enter__() is True  # never exited: the worker was killed
    with tenant_slot(tenant, ttl=30, park=parked("berth.test.work", (7,))) as held:
        assert held is False
    with tenant_slot(other, ttl=30) as held_other:  # another tenant, busy: left parked
        with tenant_slot(other, ttl=30, park=parked("berth.test.work", (8,))) as held:
            assert held_other and held is False
        assert wake_parked() == 0  # the killed holder's slot has not expired yet
        time.sleep(0.7)
        assert wake_parked() == 1
        assert sent(settings, own_queue) == [("berth.test.work", "[7]")]
        assert waiting(settings, tenant) == []
        assert [t["args"] for t in waiting(settings, other)] == [[8]]
    # `other`'s holder gave its slot back: its parked task was sent then.
    assert sent(settings, own_queue)[-1] == ("berth.test.work", "[8]")
    assert wake_parked() == 0


def test_a_pass_already_running_is_not_started_twice(settings, own_queue):
    from apps.core.queue import single_flight

    with single_flight("pass:1", ttl=30) as first:
        assert first
        with single_flight("pass:1", ttl=30) as second:
            assert second is False  # the same pass, elsewhere: skipped
        with single_flight("pass:2", ttl=30) as other:
            assert other  # another host's pass is not bound by this one
    with single_flight("pass:1", ttl=30) as again:
        assert again  # ended: the next one runs


def test_a_killed_passes_claim_lapses_after_its_ttl(settings, own_queue):
    import time

    from apps.core.queue import single_flight

    killed = single_flight("pass:1", ttl=0.5)
    assert killed.__enter__() is True  # never exited: the worker was killed
    with single_flight("pass:1", ttl=30) as held:
        assert held is False
    time.sleep(0.7)
    with single_flight("pass:1", ttl=30) as held:
        assert held is True


def test_without_redis_a_pass_runs(settings):
    from apps.core.queue import single_flight

    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with single_flight("pass:1", ttl=30) as held:
        assert held is True


@pytest.mark.django_db
def test_a_woken_task_whose_stack_is_gone_passes_the_slot_on(settings, own_queue):
    """The slot given back sends the oldest parked task; when its stack was removed
    meanwhile, it takes no slot and gives none back: the next parked task must still be
    sent, not wait for the beat's sweep (a stack stayed "removing" for it)."""
    from apps.core.queue import parked, tenant_slot
    from apps.deployments import tasks

    settings.BERTH_TENANT_WORKER_SLOTS = 1
    tenant = fresh_tenant_id()
    gone, next_one = 987654321, 987654322
    with tenant_slot(tenant, ttl=30) as held:
        assert held
        for stack_id in (gone, next_one):
            task = parked("deployments.reconcile_stack", (stack_id,))
            with tenant_slot(tenant, ttl=30, park=task) as other:
                assert other is False
    assert sent(settings, own_queue) == [("deployments.reconcile_stack", f"[{gone}]")]
    tasks.reconcile_stack(gone)  # what the worker does with it: the stack is gone
    assert sent(settings, own_queue)[-1] == ("deployments.reconcile_stack", f"[{next_one}]")
    assert waiting(settings, tenant) == []
