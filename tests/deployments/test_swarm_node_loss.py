"""What a lost Swarm node means for a stack's pass, with plain data (issue 14): Swarm
must replace the tasks of every service that did not ask for `restart: "no"` (Swarm's
`none`), and a service counts as running only the tasks that run on a node that is not
lost. The real node loss is tests/swarm/test_swarm_node_loss.py.
"""

from __future__ import annotations

import pytest

from apps.deployments import services, swarm_reconcile
from apps.deployments.models import Service
from apps.deployments.spec import project_from_spec
from apps.hosts import services as host_services
from apps.hosts.engine.swarm import SwarmServiceInfo, SwarmTaskInfo

COMPOSE = """
services:
  plain:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
  never:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
    restart: "no"
  always:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
    restart: unless-stopped
  flaky:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
    restart: on-failure:2
"""


@pytest.mark.django_db
def test_every_service_is_replaced_by_swarm_when_its_task_is_lost(member, env_a):
    swarm = host_services.register_host(
        actor=None, name="cluster", endpoint="tcp://10.0.0.2:2376", kind="swarm"
    )
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=COMPOSE)
    spec = stack.current_revision.spec
    project = project_from_spec(spec)

    def restart(name: str) -> tuple[str, int | None]:
        request = swarm_reconcile.swarm_request(stack, spec, project, name)
        return request.restart_condition, request.restart_max_attempts

    # `none` would leave a lost node's replicas gone: Swarm does not replace them; only
    # a service that says `restart: "no"` gets it
    assert restart("plain") == ("any", None)
    assert restart("never") == ("none", None)
    assert restart("always") == ("any", None)
    assert restart("flaky") == ("on-failure", 2)


def task(slot: int, node: str, state: str = "running", desired: str = "running") -> SwarmTaskInfo:
    return SwarmTaskInfo(
        task_id=f"t{slot}{node}{desired}",
        service="web",
        slot=slot,
        node_id=node,
        state=state,
        desired_state=desired,
        service_id="svc",
    )


def test_a_lost_node_s_tasks_are_not_counted_as_running():
    tasks = [
        task(1, "w1"),
        task(2, "w1"),
        # Swarm replaced these two when w2 went down; it still reports them "running"
        task(3, "w2", desired="shutdown"),
        task(4, "w2", desired="shutdown"),
        task(3, "w1", state="preparing"),
        task(4, "w1", state="preparing"),
    ]
    assert swarm_reconcile.running_tasks(tasks, {"w2": "worker2"}) == {"svc": 2}
    # before Swarm has reacted: wanted running, on a lost node
    early = [task(1, "w1"), task(2, "w2")]
    assert swarm_reconcile.running_tasks(early, {"w2": "worker2"}) == {"svc": 1}
    assert swarm_reconcile.running_tasks(early, {}) == {"svc": 2}


def test_a_service_short_of_running_tasks_is_starting_whatever_swarm_counts():
    # Swarm's RunningTasks (4) counts the lost node's tasks: Berth's count (2) decides
    found = SwarmServiceInfo(
        service_id="svc", name="web", labels={}, spec_hash="h", image="i",
        replicas_desired=4, replicas_running=4, version=3,
    )  # fmt: skip
    health, reason = swarm_reconcile._service_health(found, 2)
    assert (health, reason) == (Service.Health.STARTING, "2 of 4 tasks running")
    assert swarm_reconcile._service_health(found, 4) == (Service.Health.HEALTHY, "")
