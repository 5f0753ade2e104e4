"""Canary upgrades on the real 3-node swarm (issue 14): the new revision runs as a second
Swarm service beside the service's own, the frontier gives it the rollout's weight,
promote rolls the service itself and then drains and removes the canary, abort removes
the canary and leaves the service untouched; not one request fails through the frontier.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from apps.deployments import rollout as rollouts
from apps.deployments import routes, services
from apps.deployments import swarm_reconcile as sr
from apps.deployments.models import Container, Rollout, Service, Stack
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_routes import HOSTNAME, Load, _version
from tests.swarm.test_swarm_stacks import converge, running, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  web:
    image: {image}
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, order: start-first, delay: 2s, monitor: 2s}}
    stop_grace_period: 1s
"""


def swarm_services(engine: SwarmCluster, stack: Stack) -> dict[str, object]:
    """Swarm service name -> info, for the stack."""
    return {s.name: s for s in engine.list_services({"stack": str(stack.pk)})}


def versions(frontier, count: int) -> Counter:
    return Counter(_version(frontier.get(HOSTNAME)[1]) for _ in range(count))


def serving(engine: SwarmCluster, stack: Stack, service_name: str, image: str, count: int):
    tasks = [t for t in running(engine, stack, "web") if t.service_id == service_name]
    return len(tasks) == count and all(t.image == image and t.ports for t in tasks)


@pytest.mark.timeout(900)
def test_a_canary_runs_beside_the_service_then_is_promoted_or_aborted(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    env_a,
    frontier,
    capsys,
):
    newer = published.replace(":1.0", ":1.1")
    stack = converge(
        services.create_stack(member, env_a, "shop", compose=COMPOSE.format(image=published))
    )
    web = Service.objects.get(stack=stack, name="web")
    routes.create_route(member, web, hostname=HOSTNAME, port=8080)
    stack = converge(stack)
    own = sr.service_name(stack, "web")
    canary = sr.canary_service_name(stack, "web")
    own_id = swarm_services(engine, stack)[own].service_id
    wait_for("2 tasks routed", lambda: serving(engine, stack, own_id, published, 2))
    stack = converge(stack)
    assert wait_for("the route", lambda: frontier.get(HOSTNAME)[0] == 200, timeout=30)
    first = stack.current_revision.number

    # The canary: a second service at the new revision, the service's own untouched.
    with Load(frontier) as load:
        time.sleep(1)
        services.redeploy(
            member, Stack.objects.get(pk=stack.pk), compose=COMPOSE.format(image=newer),
            strategy="canary",
        )  # fmt: skip
        stack = converge(stack)
        rollout = Rollout.objects.get(stack=stack, service="web")
        assert (rollout.state, rollout.strategy) == (Rollout.State.CANARY, "canary")
        assert (rollout.from_revision, rollout.to_revision) == (
            first,
            stack.current_revision.number,
        )
        found = swarm_services(engine, stack)
        assert set(found) == {own, canary}
        assert found[own].version == swarm_services(engine, stack)[own].version
        canary_id = found[canary].service_id
        wait_for("the canary task", lambda: serving(engine, stack, canary_id, newer, 1))
        stack = converge(stack)
        assert serving(engine, stack, own_id, published, 2)  # the old ones still run
        rows = Container.objects.filter(stack=stack, state="running")
        assert sorted(rows.values_list("revision", flat=True)) == [
            first,
            first,
            rollout.to_revision,
        ]
        assert stack.state == Stack.State.HEALTHY, stack.state_reason

        rollouts.set_canary_weight(member, rollout, 50)
        split = versions(frontier, 120)
        assert set(split) == {"1.0", "1.1"} and 30 <= split["1.1"] <= 90, split

        # Promote: Swarm rolls the service itself, then the canary is drained and removed.
        rollouts.promote(member, Rollout.objects.get(pk=rollout.pk))
        stack = converge(stack)
        wait_for("the service on 1.1", lambda: serving(engine, stack, own_id, newer, 2), 180)
        stack = converge(stack)
        wait_for("the canary gone", lambda: canary not in swarm_services(engine, stack), 60)
        time.sleep(1)
    promoted = Rollout.objects.get(pk=rollout.pk)
    assert promoted.state == Rollout.State.DONE, promoted.message
    assert not load.errors and set(load.statuses) == {200}, (load.errors[:5], load.statuses[-20:])
    assert load.bodies == {"1.0", "1.1"}
    assert versions(frontier, 20) == Counter({"1.1": 20})
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    promoted_requests = len(load.statuses)

    # Abort: the canary goes, the stack is back on its revision, the service unchanged.
    second = stack.current_revision.number
    before = swarm_services(engine, stack)[own].version
    with Load(frontier) as load:
        services.redeploy(
            member, Stack.objects.get(pk=stack.pk), compose=COMPOSE.format(image=published),
            strategy="canary",
        )  # fmt: skip
        stack = converge(stack)
        rollout = Rollout.objects.get(stack=stack, state=Rollout.State.CANARY)
        assert rollout.from_revision == second
        canary_id = swarm_services(engine, stack)[canary].service_id
        wait_for("the canary task", lambda: serving(engine, stack, canary_id, published, 1))
        stack = converge(stack)
        wait_for("the canary answering", lambda: "1.0" in load.bodies, timeout=60)
        rollouts.abort(member, rollout)
        stack = converge(stack)
        wait_for("the canary gone", lambda: canary not in swarm_services(engine, stack), 60)
        time.sleep(1)
    aborted = Rollout.objects.get(pk=rollout.pk)
    assert aborted.state == Rollout.State.ABORTED, aborted.message
    assert stack.current_revision.number == second
    assert swarm_services(engine, stack)[own].version == before
    assert not load.errors and set(load.statuses) == {200}, (load.errors[:5], load.statuses[-20:])
    assert versions(frontier, 20) == Counter({"1.1": 20})
    assert sorted(Container.objects.filter(stack=stack).values_list("revision", flat=True)) == [
        second,
        second,
    ]
    with capsys.disabled():
        print(
            f"\nswarm canary: weight 50 gave {split['1.1']}/120 to the canary; "
            f"promote {promoted_requests} requests, abort {len(load.statuses)} requests, 0 failed"
        )
