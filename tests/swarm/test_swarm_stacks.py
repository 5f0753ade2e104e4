"""A stack on the real 3-node swarm through the service layer (issue 14, slice 3):
created with `services.create_stack` on an environment whose only host is the swarm,
converged by the reconciler into Swarm services on the stack's overlay network, its
tasks mirrored into Container rows; a second service reaching the first by name; a node
reserved for another tenant avoided; scaled through `services.scale`; edited to a new
image tag (Swarm's rolling update); removed (services and network gone).

Everything made here is removed afterwards by its tenant-id label through the docker
CLI, also when a test fails; a node label added is removed too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.conf import settings

from apps.deployments import reconciler, services
from apps.deployments import swarm_reconcile as sr
from apps.deployments.models import Container, Service, Stack
from apps.hosts.engine.swarm import SwarmCluster, SwarmTaskInfo
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  web:
    image: {image}
    environment: {{MESSAGE: "hello swarm", GREETING: "hello swarm"}}
    deploy:
      replicas: 3
      placement: {{constraints: ["node.role==worker"]}}
      # Swarm watches each updated task for `monitor` (Berth's default: 60 s) before
      # the next: short here, so the test's steps are not a minute each.
      update_config: {{parallelism: 1, order: start-first, monitor: 3s}}
    stop_grace_period: 1s
  client:
    image: {image}
    entrypoint: ["sh", "-c", "while true; do echo PAGE $$(wget -q -O - http://web:8080/ 2>&1 | grep -o 'hello swarm' | head -1); sleep 1; done"]
    healthcheck: {{disable: true}}
    deploy:
      update_config: {{monitor: 2s}}  # also updated by each step below (image, placement)
    stop_grace_period: 0s
    depends_on: [web]
"""  # noqa: E501


def wait_for(what: str, probe: Callable[[], object], timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        time.sleep(0.5)


def running(engine: SwarmCluster, stack: Stack, service: str) -> list[SwarmTaskInfo]:
    tasks = engine.list_service_tasks({"stack": str(stack.pk), "service": service})
    return [t for t in tasks if t.desired_state == "running" and t.state == "running"]


def converge(stack: Stack) -> Stack:
    reconciler.reconcile_stack(stack.pk)
    return Stack.objects.filter(pk=stack.pk).first()


@pytest.mark.timeout(900)
def test_a_stack_runs_scales_updates_and_goes(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    owner,
    env_a,
    capsys,
):
    timings: dict[str, float] = {}
    workers = {n.node_id: n for n in swarm.worker_nodes}
    started = time.monotonic()
    stack = services.create_stack(member, env_a, "shop", compose=COMPOSE.format(image=published))
    stack = converge(stack)
    timings["create to healthy"] = time.monotonic() - started
    assert (stack.state, stack.state_reason) == (Stack.State.HEALTHY, "")
    web_tasks = running(engine, stack, "web")
    assert len(web_tasks) == 3 and {t.node_id for t in web_tasks} <= set(workers)
    [listed_web] = [s for s in engine.list_services({"stack": str(stack.pk)})
                    if s.labels["io.berth.service"] == "web"]  # fmt: skip
    assert listed_web.name == sr.service_name(stack, "web")
    assert listed_web.labels["io.berth.tenant"] == "acme"
    net = f"berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}"
    assert engine.list_overlay_networks({"stack": str(stack.pk)}) == [net]

    # mirrored: one Container row per task, its task id, its slot, its node, the swarm host
    web = Service.objects.get(stack=stack, name="web")
    rows = Container.objects.filter(service=web).select_related("node")
    assert sorted(r.replica for r in rows) == sorted(t.slot for t in web_tasks)
    assert {r.engine_id for r in rows} == {t.task_id for t in web_tasks}
    assert {r.node.node_id for r in rows} == {t.node_id for t in web_tasks}
    assert {(r.host_id, r.state, r.stack_id) for r in rows} == {
        (swarm_host.pk, "running", stack.pk)
    }
    assert web.health == Service.Health.HEALTHY and web.scale == 3

    # the client reaches web by its name on the stack's overlay
    [client] = [s for s in engine.list_services({"stack": str(stack.pk)})
                if s.labels["io.berth.service"] == "client"]  # fmt: skip

    def page() -> bool:
        reader = engine.service_logs(client.service_id, tail="20")
        try:
            return any("PAGE hello swarm" in line.text for line in reader.lines())
        finally:
            reader.close()

    wait_for("the client reaching web by name", page)
    versions = {s.service_id: s.version for s in engine.list_services({"stack": str(stack.pk)})}
    assert converge(stack).state == Stack.State.HEALTHY
    after = {s.service_id: s.version for s in engine.list_services({"stack": str(stack.pk)})}
    assert after == versions, "a quiet pass updates nothing"

    # a worker reserved for another tenant: this tenant's tasks leave it
    reserved = sorted(workers.values(), key=lambda n: n.hostname)[0]
    swarm.manager.docker("node", "update", "--label-add", f"{sr.TENANT_NODE_LABEL}=other",
                         reserved.hostname)  # fmt: skip
    mark = time.monotonic()
    stack = converge(stack)
    wait_for("web off the reserved worker",
             lambda: (lambda ts: len(ts) == 3 and reserved.node_id not in {t.node_id for t in ts})(
                 running(engine, stack, "web")))  # fmt: skip
    assert all(reserved.node_id != t.node_id for t in running(engine, stack, "client"))
    timings["moved off a reserved node"] = time.monotonic() - mark
    swarm.manager.docker("node", "update", "--label-rm", sr.TENANT_NODE_LABEL, reserved.hostname)

    # scaled through the service function
    mark = time.monotonic()
    services.scale(member, web, 1)
    stack = converge(stack)
    wait_for("web at 1 task", lambda: len(running(engine, stack, "web")) == 1)
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY
    assert Container.objects.filter(service=web).count() == 1
    assert Service.objects.get(pk=web.pk).scale == 1
    timings["scale 3 -> 1"] = time.monotonic() - mark

    # edited to a new tag: Swarm's rolling update
    mark = time.monotonic()
    newer = published.replace(":1.0", ":1.1")
    stack = Stack.objects.get(pk=stack.pk)
    services.redeploy(member, stack, compose=COMPOSE.format(image=newer))
    stack = converge(stack)
    wait_for("web on 1.1", lambda: [t for t in running(engine, stack, "web")
                                   if t.image == newer])  # fmt: skip
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert {r.image for r in Container.objects.filter(stack=stack)} == {newer}
    timings["rolling update to 1.1"] = time.monotonic() - mark

    # removed: services, then the network
    mark = time.monotonic()
    services.remove(owner, Stack.objects.get(pk=stack.pk))
    assert converge(stack) is None
    assert engine.list_services({"stack": str(stack.pk)}) == []
    wait_for("the overlay network gone",
             lambda: engine.list_overlay_networks({"stack": str(stack.pk)}) == [],
             timeout=120)  # fmt: skip
    assert not Container.objects.filter(host=swarm_host).exists()
    timings["remove"] = time.monotonic() - mark
    with capsys.disabled():
        print("\nswarm stack: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_ports_and_anonymous_volumes_are_refused_on_the_swarm(
    swarm_host: Host, published, member, env_a
):
    from django.core.exceptions import ValidationError

    compose = (f"services:\n  web:\n    image: {published}\n    ports: ['8080:8080']\n"
               "    volumes: [/data]\n")  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        services.create_stack(member, env_a, "shop", compose=compose)
    messages = caught.value.message_dict["compose"]
    assert any(re.match(r"services\.web\.ports: .*frontier", m) for m in messages), messages
    assert any(m.startswith("services.web.volumes: /data: anonymous") for m in messages), messages
