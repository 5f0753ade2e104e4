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
    app = Celery("berth-test", broker=url)
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
