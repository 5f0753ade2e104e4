"""Heartbeats against the real engine: state, versions, errors and Events on changes only."""

from __future__ import annotations

import time

import pytest
from celery import current_app
from django.conf import settings

from apps.activity.models import Event
from apps.hosts import services, tasks
from apps.hosts.models import Host
from tests.hosts.conftest import docker_cli, missing_socket

pytestmark = pytest.mark.django_db


def events(host: Host, action: str | None = None) -> list[Event]:
    found = Event.objects.filter(object_type="host", object_id=str(host.pk))
    if action:
        found = found.filter(action=action)
    return list(found)


def register(name: str, endpoint: str) -> Host:
    return services.register_host(actor=None, name=name, endpoint=endpoint)


@pytest.mark.engine
def test_heartbeat_on_the_real_engine_makes_the_host_active():
    host = register("local", settings.BERTH_DOCKER_HOST)
    assert host.state == Host.State.PENDING

    host = services.heartbeat(host.pk)
    assert host.state == Host.State.ACTIVE
    assert host.engine_version == docker_cli("version", "--format", "{{.Server.Version}}")
    assert host.api_version == docker_cli("version", "--format", "{{.Server.APIVersion}}")
    assert host.cpus >= 1 and host.memory_bytes > 0 and host.operating_system
    assert host.containers_total is not None and host.containers_running is not None
    assert host.last_error == ""
    assert host.last_heartbeat_at and host.last_seen_at == host.last_heartbeat_at
    assert [e.action for e in events(host)] == ["host.connected", "host.register"]

    services.heartbeat(host.pk)  # no state change, no new Event
    assert len(events(host)) == 2


@pytest.mark.engine
def test_unreachable_within_one_call_then_recovers(tmp_path):
    host = register("flaky", missing_socket(tmp_path))
    started = time.monotonic()
    host = services.heartbeat(host.pk)
    assert time.monotonic() - started < 5
    assert host.state == Host.State.UNREACHABLE
    assert "no socket file" in host.last_error
    assert host.last_heartbeat_at is not None and host.last_seen_at is None
    [down] = events(host, "host.unreachable")
    assert down.outcome == Event.Outcome.FAILURE
    assert down.tenant is None
    assert down.message == host.last_error

    services.heartbeat(host.pk)  # still down: no second Event
    assert len(events(host, "host.unreachable")) == 1

    host = services.update_host(actor=None, host=host, endpoint=settings.BERTH_DOCKER_HOST)
    host = services.heartbeat(host.pk)
    assert host.state == Host.State.ACTIVE
    assert host.last_error == ""
    assert host.last_seen_at == host.last_heartbeat_at
    [up] = events(host, "host.recovered")
    assert up.outcome == Event.Outcome.SUCCESS and up.tenant is None


@pytest.mark.engine
def test_draining_host_stays_draining_across_heartbeats():
    host = services.heartbeat(register("local", settings.BERTH_DOCKER_HOST).pk)
    host = services.set_draining(actor=None, host=host, draining=True)
    assert host.state == Host.State.DRAINING and host.draining
    host = services.heartbeat(host.pk)
    assert host.state == Host.State.DRAINING
    host = services.set_draining(actor=None, host=host, draining=False)
    assert host.state == Host.State.ACTIVE and not host.draining
    assert [e.action for e in events(host)][:2] == ["host.undrain", "host.drain"]


def test_heartbeat_never_raises_on_broken_tls_material(tmp_path, settings):
    settings.BERTH_STATE_DIR = tmp_path
    host = register("broken", "tcp://127.0.0.1:9")
    # Bypass validation, as a corrupted row would.
    Host.objects.filter(pk=host.pk).update(
        tls_ca_cert="garbage", tls_client_cert="garbage", tls_client_key="garbage"
    )
    host = services.heartbeat(host.pk)
    assert host.state == Host.State.UNREACHABLE
    assert host.last_error


def test_heartbeat_of_a_removed_host_returns_none():
    host = register("gone", "tcp://127.0.0.1:9")
    services.remove_host(actor=None, host=host)
    assert services.heartbeat(host.pk) is None


@pytest.mark.engine
def test_heartbeat_all_and_the_tasks(tmp_path):
    good = register("local", settings.BERTH_DOCKER_HOST)
    bad = register("down", missing_socket(tmp_path))
    states = {h.name: h.state for h in services.heartbeat_all()}
    assert states == {"local": Host.State.ACTIVE, "down": Host.State.UNREACHABLE}

    assert tasks.heartbeat.apply(args=(good.pk,)).get() == Host.State.ACTIVE
    assert tasks.heartbeat.apply(args=(10**9,)).get() is None

    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    try:
        assert tasks.heartbeat_all.apply().get() == 2
    finally:
        current_app.conf.task_always_eager = eager
    bad.refresh_from_db()
    assert bad.state == Host.State.UNREACHABLE


def test_tasks_are_registered_under_their_names():
    assert tasks.heartbeat.name == "hosts.heartbeat"
    assert tasks.heartbeat_all.name == "hosts.heartbeat_all"
    assert tasks.heartbeat.acks_late and tasks.heartbeat_all.acks_late


@pytest.mark.engine
def test_ensure_local_host_is_idempotent(settings):
    host, created = services.ensure_local_host()
    assert created and host.name == "local" and host.endpoint == settings.BERTH_DOCKER_HOST
    assert host.state == Host.State.ACTIVE
    again, created = services.ensure_local_host()
    assert not created and again.pk == host.pk
    assert Host.objects.count() == 1


def test_ensure_local_host_picks_a_free_name(settings, tmp_path):
    register("local", "tcp://127.0.0.1:9")
    settings.BERTH_DOCKER_HOST = missing_socket(tmp_path)
    host, created = services.ensure_local_host()
    assert created and host.name == "local-2"
    assert host.state == Host.State.UNREACHABLE
