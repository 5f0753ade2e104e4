"""The periodic host pass against the real engine: its database queries do not grow with
the number of stacks, and a container killed behind Berth's back is restored."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.deployments import reconciler
from apps.deployments.models import Container, Stack
from apps.hosts.models import Host
from tests.fixtures.engine import docker, engine_containers, inspect, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

TWO_SERVICES = """
services:
  api:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on: [api]
    stop_grace_period: 1s
"""


def deployed(environment, image: str, names: list[str]) -> list[Stack]:
    stacks = [make_stack(environment, name, TWO_SERVICES, {"IMAGE": image}) for name in names]
    for stack in stacks:
        reconciler.reconcile_stack(stack.pk)
    return stacks


def quiet_pass(host: Host) -> tuple[int, dict]:
    """The second of two passes (the first may still mirror): its queries and counters."""
    reconciler.reconcile_host(host.pk)
    with CaptureQueriesContext(connection) as captured:
        counters = reconciler.reconcile_host(host.pk)
    return len(captured.captured_queries), counters


def test_a_quiet_host_pass_costs_the_same_queries_for_2_or_6_stacks(environment, image, host):
    stacks = deployed(environment, image, ["q1", "q2"])
    two, counters = quiet_pass(host)
    assert counters["stacks"] == 2 and counters["orphans"] == 0

    stacks += deployed(environment, image, ["q3", "q4", "q5", "q6"])
    six, counters = quiet_pass(host)
    assert counters["stacks"] == 6 and counters["orphans"] == 0

    assert six == two, (two, six)
    assert Container.objects.filter(stack__in=stacks).count() == 6 * 3
    assert set(Stack.objects.values_list("state", flat=True)) == {Stack.State.HEALTHY}
    assert set(Stack.objects.values_list("claimed_by", flat=True)) == {""}
    assert Stack.objects.filter(last_reconciled_at__isnull=True).count() == 0


def test_the_next_host_pass_restores_a_killed_container(environment, image, host):
    stacks = deployed(environment, image, ["k1", "k2", "k3"])
    reconciler.reconcile_host(host.pk)
    victim = next(
        c
        for c in engine_containers(stacks[1])
        if c["Config"]["Labels"]["io.berth.service"] == "api"
    )
    docker("kill", victim["Id"])
    assert not inspect(victim["Id"])["State"]["Running"]

    counters = reconciler.reconcile_host(host.pk)

    assert counters["stacks"] == 3
    labels = victim["Config"]["Labels"]
    slot = [
        c
        for c in engine_containers(stacks[1])
        if (c["Config"]["Labels"]["io.berth.service"], c["Config"]["Labels"]["io.berth.replica"])
        == (labels["io.berth.service"], labels["io.berth.replica"])
    ]
    assert [c["State"]["Running"] for c in slot] == [True]
    row = Container.objects.get(engine_id=slot[0]["Id"])
    assert row.state == "running"
    assert Stack.objects.get(pk=stacks[1].pk).state == Stack.State.HEALTHY


def test_a_quiet_pass_does_not_inspect_each_stopped_container(environment, image, host):
    """A stopped stack's exited containers are known from the list: a pass that finds them
    as mirrored asks the engine nothing more about them (it once inspected each one on
    every pass: 2,500 engine calls a pass for 25 stopped stacks of 100)."""
    stacks = deployed(environment, image, ["s1", "s2"])
    _queries, running = quiet_pass(host)

    Stack.objects.filter(pk__in=[s.pk for s in stacks]).update(desired_state=Stack.Desired.STOPPED)
    for stack in stacks:
        reconciler.reconcile_stack(stack.pk)
    assert Container.objects.filter(stack__in=stacks, state="exited").count() == 6
    _queries, stopped = quiet_pass(host)

    assert stopped["api_calls"] == running["api_calls"], (running, stopped)
    assert set(Stack.objects.values_list("state", flat=True)) == {Stack.State.STOPPED}
