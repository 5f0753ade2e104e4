"""Queueing work survives a stopped broker: the request goes on, the work waits."""

import socket

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
