"""The catalog's guestbook on the real 3-node swarm, as a tenant deploys it (issue 14):
the template unchanged, its `depends_on: service_healthy` honoured (the api is created
first, the frontend and stats once the api runs healthy), its container port published
on the task's node, its volume pinned to one node with the api, its route answering
through the frontier; scaled out, the frontend spreads over the nodes.
"""

from __future__ import annotations

import pytest

from apps.activity.models import Event
from apps.catalog.models import TemplateVersion
from apps.deployments import services
from apps.deployments.models import Container, Service, Stack
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from apps.traffic import frontier as frontier_config
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_stacks import converge, running, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

HOSTNAME = "guestbook.swarm.test"


@pytest.mark.timeout(900)
def test_the_catalog_guestbook_runs_on_the_swarm(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    env_a,
    frontier,
):
    version = TemplateVersion.objects.get(template__slug="guestbook", version="1.0.0")
    stack = services.create_stack(
        member, env_a, "guestbook", template_version=version, answers={"DOMAIN": HOSTNAME}
    )
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason

    # The api first; the services depending on its health once it ran healthy.
    changes = [
        sorted(message.removeprefix("Swarm services changed: ").split(", "))
        for message in Event.objects.filter(object_id=str(stack.pk), action="stack.reconcile")
        .order_by("pk")
        .values_list("message", flat=True)
    ]
    assert changes[:2] == [["api"], ["frontend", "stats"]], changes

    # The volume lives on one node, with the api.
    [api] = running(engine, stack, "api")
    assert stack.swarm_volume_node == api.node_id

    # The frontend's container port is published on its node; the route reaches it.
    [frontend] = running(engine, stack, "frontend")
    assert [target for target, _ in frontend.ports] == [8080]
    row = Container.objects.get(engine_id=frontend.task_id)
    assert row.ports[0]["container_port"] == 8080 and row.ports[0]["host_port"] > 0
    frontier_config.apply("test")
    assert wait_for("the route", lambda: frontier.get(HOSTNAME)[0] == 200, timeout=30)
    status, body = frontier.get(HOSTNAME)
    assert status == 200 and "Guestbook" in body

    # Scaled out: the frontend spreads over the nodes (Swarm's spread).
    services.scale(member, Service.objects.get(stack=stack, name="frontend"), 3)
    stack = converge(stack)
    tasks = wait_for(
        "3 frontends",
        lambda: (lambda ts: ts if len(ts) == 3 else None)(running(engine, stack, "frontend")),
        timeout=120,
    )
    assert len({t.node_id for t in tasks}) >= 2, [t.node_id for t in tasks]
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert frontier.get(HOSTNAME)[0] == 200
