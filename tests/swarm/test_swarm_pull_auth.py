"""The nodes' pull credential after a while (issue 14): a service's registry credential
is the tenant's deployer credential, valid five minutes, handed to Swarm when the
service is created or updated, and Swarm pulls with it whenever it places a task on a
node lacking the image. Here it expires (eight seconds), the image is removed from the
other worker and the task's node is drained: the task moved there is rejected ("No such
image") until the periodic pass hands the service a fresh credential
(`swarm_reconcile.refresh_pull_credentials`); then it pulls and runs.
"""

from __future__ import annotations

import time

import pytest

from apps.activity.models import Event
from apps.deployments import reconciler, services
from apps.deployments.models import Stack
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from apps.registry.token import credentials
from tests.swarm.cluster import Cluster, Node
from tests.swarm.test_swarm_stacks import converge, running

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

#: The credential's life here (five minutes in production): the test outlives it.
CREDENTIAL_SECONDS = 8
COMPOSE = """
services:
  web:
    image: {image}
    deploy:
      placement: {{constraints: ["node.role==worker"]}}
    stop_grace_period: 0s
"""


def forget_image(node: Node, image: str) -> None:
    """Remove every copy of the image's repository from the node's engine."""
    repository = image.rsplit(":", 1)[0]
    ids = set(node.docker("image", "ls", "-q", "--filter", f"reference={repository}*").split())
    ids |= set(node.docker("image", "ls", "-q", "--filter", f"reference={repository}").split())
    if ids:
        node.docker("image", "rm", "-f", *sorted(ids))


@pytest.mark.timeout(300)
def test_a_task_moved_after_its_credential_expired_still_pulls(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    env_a,
    monkeypatch,
):
    monkeypatch.setattr(credentials, "DEPLOYER_SECONDS", CREDENTIAL_SECONDS)
    stack = converge(
        services.create_stack(member, env_a, "later", compose=COMPOSE.format(image=published))
    )
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    issued = time.monotonic()
    [task] = running(engine, stack, "web")
    first = next(n for n in swarm.worker_nodes if n.node_id == task.node_id)
    other = next(n for n in swarm.worker_nodes if n.node_id != task.node_id)
    forget_image(other, published)
    time.sleep(max(0.0, CREDENTIAL_SECONDS + 1 - (time.monotonic() - issued)))
    swarm.manager.docker("node", "update", "--availability", "drain", first.node_id)
    try:
        owner = {"stack": str(stack.pk), "service": "web"}
        deadline = time.monotonic() + 90
        seen = []
        while time.monotonic() < deadline:
            reconciler.reconcile_host(swarm_host.pk)
            tasks = engine.list_service_tasks(owner)
            seen.append([(t.node_id[:6], t.state, t.desired_state, t.error[:120]) for t in tasks])
            moved = running(engine, stack, "web")
            if moved and moved[0].node_id == other.node_id:
                break
            time.sleep(1.0)
        else:
            raise AssertionError(f"not running on {other.name}: {seen[-1]}")
    finally:
        swarm.manager.docker("node", "update", "--availability", "active", first.node_id)
    rejected = {t[3] for tasks in seen for t in tasks if t[1] == "rejected"}
    told = Event.objects.filter(action="stack.pull_credential", data__stack=stack.pk)
    assert told and "web" in told[0].message, rejected
    assert told[0].tenant_id == stack.tenant_id
    assert all(r.startswith("No such image") for r in rejected), rejected
