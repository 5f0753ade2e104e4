"""A stack with a named volume on the real 3-node swarm (issue 14's volume policy): Berth
pins the volume to one node at the first deploy, the service mounting it runs there and
keeps its data across an update; draining that node stops the service rather than
starting it empty elsewhere (Berth says why), and activating the node brings it back,
data intact.
"""

from __future__ import annotations

import time

import pytest

from apps.deployments import services
from apps.deployments.models import Service, Stack
from apps.hosts import services as host_services
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_stacks import converge, running, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  db:
    image: {image}
    entrypoint: ["sh", "-c", "echo {mark} >> /home/app/boots; exec /app/httpd-start.sh"]
    volumes: [data:/home/app]
    deploy:
      placement: {{constraints: ["node.role==worker"]}}
      # Swarm watches an updated task for `monitor` (Berth's default: 60 s) before the
      # update is over, and the pass waits for that: short here.
      update_config: {{monitor: 2s}}
    stop_grace_period: 0s
volumes:
  data: {{}}
"""


def boots(swarm: Cluster, engine: SwarmCluster, stack: Stack) -> list[str]:
    """/home/app/boots (the volume) as the running task sees it, read through its node's engine."""
    [task] = running(engine, stack, "db")
    hostname = next(n.hostname for n in engine.list_nodes() if n.node_id == task.node_id)
    node = next(n for n in swarm.nodes if n.hostname == hostname)
    return node.docker("exec", task.container_id, "cat", "/home/app/boots").split()


@pytest.mark.timeout(600)
def test_a_volume_keeps_its_node_and_its_data(
    swarm: Cluster, swarm_host: Host, engine: SwarmCluster, published: str, member, superuser, env_a
):
    stack = services.create_stack(
        member, env_a, "vault", compose=COMPOSE.format(image=published, mark="one")
    )
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    pinned = stack.swarm_volume_node
    workers = {n.node_id for n in swarm.worker_nodes}
    assert pinned in workers
    assert [t.node_id for t in running(engine, stack, "db")] == [pinned]
    assert boots(swarm, engine, stack) == ["one"]

    # An update replaces the task on the same node, with the same volume.
    services.redeploy(member, stack, compose=COMPOSE.format(image=published, mark="two"))
    stack = converge(stack)
    wait_for("db updated", lambda: boots(swarm, engine, stack) == ["one", "two"], timeout=120)
    assert [t.node_id for t in running(engine, stack, "db")] == [pinned]

    # Its node drained through Berth: the service waits for it, nowhere else.
    node = next(n for n in host_services.swarm_nodes(swarm_host) if n.node_id == pinned)
    host_services.set_node_availability(
        actor=superuser, host=swarm_host, node_id=pinned, availability="drain"
    )
    owner = {"stack": str(stack.pk), "service": "db"}
    wait_for("db stopped",
             lambda: all(t.state != "running" for t in engine.list_service_tasks(owner)),
             timeout=60)  # fmt: skip
    stack = converge(stack)
    db = Service.objects.get(stack=stack, name="db")
    assert node.hostname in db.health_reason and "volumes" in db.health_reason, (
        db.health,
        db.health_reason,
        stack.state_reason,
    )
    assert not running(engine, stack, "db")

    host_services.set_node_availability(
        actor=superuser, host=swarm_host, node_id=pinned, availability="active"
    )
    try:
        wait_for("db back", lambda: running(engine, stack, "db"), timeout=120)
    except AssertionError:
        manager = swarm.manager
        print(manager.docker("node", "ls"))
        print(manager.docker("service", "ps", "--no-trunc", sr_name(stack)))
        raise
    assert [t.node_id for t in running(engine, stack, "db")] == [pinned]
    wait_for("a third boot, same data",
             lambda: boots(swarm, engine, stack) == ["one", "two", "two"], timeout=60)  # fmt: skip
    assert converge(stack).state == Stack.State.HEALTHY


def sr_name(stack):
    from apps.deployments.swarm_reconcile import service_name

    return service_name(stack, "db")


@pytest.mark.timeout(600)
def test_a_lost_volume_node_is_waited_for_and_its_task_returns_with_its_data(
    swarm: Cluster, swarm_host: Host, engine: SwarmCluster, published: str, member, env_a
):
    """The pinned worker's engine killed: the service waits for the node (Berth says
    why) and never starts empty elsewhere; the engine back, the task returns there with
    the volume's data."""
    from tests.swarm.test_swarm_node_loss import beat_until

    stack = services.create_stack(
        member, env_a, "keep", compose=COMPOSE.format(image=published, mark="one")
    )
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    pinned = stack.swarm_volume_node
    [before] = running(engine, stack, "db")
    assert before.node_id == pinned and boots(swarm, engine, stack) == ["one"]
    victim = next(n for n in swarm.worker_nodes if n.node_id == pinned)
    owner = {"stack": str(stack.pk), "service": "db"}
    elsewhere: list[str] = []  # tasks seen running on another node (there must be none)

    def waiting() -> bool:
        tasks = engine.list_service_tasks(owner)
        elsewhere.extend(t.node_id for t in tasks if t.state == "running" and t.node_id != pinned)
        db = Service.objects.get(stack=stack, name="db")
        return victim.hostname in db.health_reason and "volumes" in db.health_reason

    swarm.kill_engine(victim)
    try:
        beat_until(swarm_host, "the service waiting for its volume's node", waiting, 60)
        for _ in range(5):  # a few more passes: still waiting, still nowhere else
            assert waiting()
            time.sleep(1.0)
        reason = Stack.objects.get(pk=stack.pk).state_reason
    finally:
        swarm.start_engine(victim)
    assert not elsewhere, elsewhere
    assert "holds the stack's volumes" in reason, reason

    def back() -> bool:
        tasks = running(engine, stack, "db")
        return bool(tasks) and tasks[0].task_id != before.task_id and tasks[0].node_id == pinned

    beat_until(swarm_host, "the task back on its node", back, 120)
    wait_for("the data kept", lambda: boots(swarm, engine, stack) == ["one", "one"], timeout=60)
    beat_until(swarm_host, "the stack healthy",
               lambda: Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY, 60)  # fmt: skip
    assert not elsewhere, elsewhere
