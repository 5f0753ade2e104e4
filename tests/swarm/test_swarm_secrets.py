"""Secrets and configs on the real 3-node swarm (issue 14): a stack naming entries of
its environment's store gets them as Swarm secrets and configs, read from inside the
task through the engine of the node running it (owner and mode as written); a rotation
makes a new Swarm secret, Swarm rolls the task, and the old version is removed; the
stack's removal removes every one. The value is in no service spec, Revision or Event.

Everything made here is removed afterwards by its tenant-id label through the docker
CLI, also when a test fails.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from apps.activity.models import Event
from apps.deployments import reconciler, secret_store, services
from apps.deployments import swarm_reconcile as sr
from apps.deployments.models import Stack
from apps.hosts.engine.swarm import SwarmCluster, SwarmTaskInfo
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster, Node
from tests.swarm.test_swarm_stacks import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

VALUE = "s3cr3t-swarm-hunter2"
ROTATED = "r0tated-swarm-value"
COMPOSE = """
services:
  web:
    image: {image}
    stop_grace_period: 1s
    deploy:
      update_config: {{order: start-first, monitor: 2s}}
    secrets:
      - db
      - {{source: api, target: for_app, uid: "1000", gid: "1001", mode: 0440}}
    configs:
      - {{source: site, target: /etc/app/site.conf}}
secrets:
  db: {{external: true, name: db_password}}
  api: {{external: true, name: api_key}}
configs:
  site: {{external: true}}
"""


def converge(stack: Stack) -> Stack:
    reconciler.reconcile_stack(stack.pk)
    return Stack.objects.filter(pk=stack.pk).first()


def running_task(engine: SwarmCluster, stack: Stack) -> SwarmTaskInfo | None:
    tasks = engine.list_service_tasks({"stack": str(stack.pk), "service": "web"})
    found = [t for t in tasks if t.desired_state == "running" and t.state == "running"]
    return found[0] if len(found) == 1 and found[0].container_id else None


def node_of(swarm: Cluster, task: SwarmTaskInfo) -> Node:
    [node] = [n for n in (swarm.manager, *swarm.worker_nodes) if n.node_id == task.node_id]
    return node


def in_task(swarm: Cluster, task: SwarmTaskInfo, *command: str) -> str:
    """A command run as root inside the task's container, through its node's engine."""
    return node_of(swarm, task).docker("exec", "-u", "0", task.container_id, *command).strip()


@pytest.mark.timeout(600)
def test_secrets_delivered_rotated_and_removed(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    owner,
    env_a,
    caplog,
    capsys,
):
    caplog.set_level(logging.DEBUG)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    entry = secret_store.create_entry(member, env_a, kind="secret", name="db_password",
                                      value=VALUE)  # fmt: skip
    api = secret_store.create_entry(member, env_a, kind="secret", name="api_key", value="api-key")
    secret_store.create_entry(member, env_a, kind="config", name="site", value="a=1\n")
    stack = services.create_stack(member, env_a, "vault", compose=COMPOSE.format(image=published))
    stack = converge(stack)
    assert (stack.state, stack.state_reason) == (Stack.State.HEALTHY, "")
    task = wait_for("web running", lambda: running_task(engine, stack))
    timings["create to running"] = time.monotonic() - mark
    assert in_task(swarm, task, "cat", "/run/secrets/db") == VALUE
    assert in_task(swarm, task, "cat", "/run/secrets/for_app") == "api-key"
    assert in_task(swarm, task, "cat", "/etc/app/site.conf") == "a=1"
    modes = in_task(swarm, task, "stat", "-c", "%n %a %u %g", "/run/secrets/db",
                    "/run/secrets/for_app", "/etc/app/site.conf")  # fmt: skip
    assert modes.splitlines() == [
        "/run/secrets/db 400 0 0",
        "/run/secrets/for_app 440 1000 1001",
        "/etc/app/site.conf 444 0 0",
    ]
    secrets = engine.list_file_objects("secret", {"stack": str(stack.pk)})
    [secret] = [o for o in secrets if o.labels[sr.STORE_NAME] == "db_password"]
    assert len(secrets) == 2 and secret.name == sr.file_object_name(stack, entry)
    assert secret.labels["io.berth.tenant"] == "acme" and secret.labels[sr.STORE_VERSION] == "1"
    [config] = engine.list_file_objects("config", {"stack": str(stack.pk)})
    assert config.labels[sr.STORE_NAME] == "site"
    service_doc = swarm.manager.docker("service", "inspect", sr.service_name(stack, "web"))
    assert VALUE not in service_doc and secret.name in service_doc
    # configs are not secret: Swarm shows their data to whoever inspects; secrets never
    assert VALUE not in swarm.manager.docker("secret", "inspect", secret.object_id)

    # rotated: a new Swarm secret, the task rolled, the old version removed
    mark = time.monotonic()
    secret_store.rotate_entry(member, entry, value=ROTATED)
    entry.refresh_from_db()
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    task = wait_for("web rolled", lambda: (lambda t: t if t and t.task_id != task.task_id
                                           else None)(running_task(engine, stack)))  # fmt: skip
    assert in_task(swarm, task, "cat", "/run/secrets/db") == ROTATED
    timings["rotation to the new value read"] = time.monotonic() - mark
    wanted = sorted([sr.file_object_name(stack, entry), sr.file_object_name(stack, api)])
    wait_for("the old version removed", lambda: converge(stack) and [
        o.name for o in engine.list_file_objects("secret", {"stack": str(stack.pk)})
    ] == wanted)  # fmt: skip
    [config_after] = engine.list_file_objects("config", {"stack": str(stack.pk)})
    assert config_after.object_id == config.object_id  # unchanged entries are kept

    recorded = json.dumps(list(Event.objects.values("message", "data")), default=str)
    specs = json.dumps(list(stack.revisions.values("spec", "summary", "changes")))
    for value in (VALUE, ROTATED):
        assert value not in recorded and value not in specs and value not in caplog.text

    # removed with the stack: services, secrets, configs
    mark = time.monotonic()
    services.remove(owner, Stack.objects.get(pk=stack.pk))
    assert converge(stack) is None
    assert engine.list_services({"stack": str(stack.pk)}) == []
    for kind in ("secret", "config"):
        assert engine.list_file_objects(kind, {"stack": str(stack.pk)}) == []
    timings["remove"] = time.monotonic() - mark
    with capsys.disabled():
        print("\nswarm secrets: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_a_name_missing_from_the_store_is_refused_at_create(swarm_host, published, member, env_a):
    from django.core.exceptions import ValidationError

    secret_store.create_entry(member, env_a, kind="secret", name="db_password", value=VALUE)
    secret_store.create_entry(member, env_a, kind="secret", name="api_key", value="k")
    with pytest.raises(ValidationError) as caught:
        services.create_stack(member, env_a, "vault", compose=COMPOSE.format(image=published))
    assert caught.value.message_dict["compose"] == [
        "configs.site: there is no config named 'site' in the environment dev: create it on "
        "the environment's Secrets page first"
    ]
    assert not Stack.objects.filter(name="vault").exists()
