"""Secrets and configs on a single engine, against the real engine: the files are in the
container before it starts (owner and mode as the compose file says), read with exec;
a rotation replaces the container with one holding the new value; and the value is in
no part of the container's config, the Revision, the Events or Berth's log lines."""

from __future__ import annotations

import json
import logging

import pytest

from apps.activity.models import Event
from apps.deployments import reconciler, secret_store
from apps.deployments.models import Container, Stack
from tests.fixtures.engine import docker, engine_containers, inspect, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

VALUE = "s3cr3t-engine-hunter2"
ROTATED = "r0tated-engine-value"
COMPOSE = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 0s
    secrets:
      - db
      - {source: api, target: for_app, uid: "1000", gid: "1001", mode: 0440}
    configs:
      - {source: site, target: /etc/app/site.conf}
secrets:
  db: {external: true, name: db_password}
  api: {external: true, name: api_key}
configs:
  site: {external: true}
"""


def read(container_id: str, *command: str) -> str:
    return docker("exec", container_id, *command).strip()


def web_container(stack: Stack) -> str:
    [found] = [c for c in engine_containers(stack) if c["State"]["Running"]]
    return found["Id"]


def assert_nowhere(stack: Stack, container_id: str, *values: str, log_text: str) -> None:
    """The value is in no config of the container, no Revision, Event or log line."""
    config = json.dumps(inspect(container_id))
    revisions = json.dumps(list(stack.revisions.values("spec", "summary", "changes")))
    events = json.dumps(list(Event.objects.values("message", "data")), default=str)
    rows = json.dumps(list(Container.objects.values()), default=str)
    for value in values:
        for where, text in (("inspect", config), ("revisions", revisions), ("events", events),
                            ("container rows", rows), ("logs", log_text)):  # fmt: skip
            assert value not in text, f"the value is in the {where}"


def test_files_delivered_rotated_and_never_shown(environment, image, owner, caplog):
    caplog.set_level(logging.DEBUG)
    entry = secret_store.create_entry(
        owner, environment, kind="secret", name="db_password", value=VALUE
    )
    secret_store.create_entry(owner, environment, kind="secret", name="api_key", value="api-key")
    secret_store.create_entry(owner, environment, kind="config", name="site", value="a=1\n")
    stack = make_stack(environment, "vault", COMPOSE, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    first = web_container(stack)
    assert read(first, "cat", "/run/secrets/db") == VALUE
    assert read(first, "cat", "/run/secrets/for_app") == "api-key"
    assert read(first, "cat", "/etc/app/site.conf") == "a=1"
    modes = read(first, "stat", "-c", "%n %a %u %g", "/run/secrets/db", "/run/secrets/for_app",
                 "/etc/app/site.conf", "/etc/app")  # fmt: skip
    assert modes.splitlines() == [
        "/run/secrets/db 400 0 0",
        "/run/secrets/for_app 440 1000 1001",
        "/etc/app/site.conf 444 0 0",
        "/etc/app 755 0 0",
    ]
    assert_nowhere(stack, first, VALUE, log_text=caplog.text)

    secret_store.rotate_entry(owner, entry, value=ROTATED)
    reconciler.reconcile_stack(stack.pk)  # what the queued task runs
    stack.refresh_from_db()
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    second = web_container(stack)
    assert second != first  # replaced: the spec hash follows the entry's version
    assert read(second, "cat", "/run/secrets/db") == ROTATED
    assert not docker("ps", "-aq", "--filter", f"id={first}", check=False)
    reconciler.reconcile_stack(stack.pk)  # converged: nothing replaced again
    assert web_container(stack) == second
    assert_nowhere(stack, second, VALUE, ROTATED, log_text=caplog.text)


def test_a_deleted_entry_fails_the_pass_readably(environment, image, owner):
    entry = secret_store.create_entry(owner, environment, kind="secret", name="db_password",
                                      value=VALUE)  # fmt: skip
    secret_store.create_entry(owner, environment, kind="secret", name="api_key", value="api-key")
    secret_store.create_entry(owner, environment, kind="config", name="site", value="a=1\n")
    stack = make_stack(environment, "gone", COMPOSE, {"IMAGE": image})
    entry.delete()  # behind the service layer's back (it refuses while a stack uses it)
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert stack.state == Stack.State.FAILED
    assert "db_password is not in the environment's store" in stack.state_reason
    assert engine_containers(stack) == []
