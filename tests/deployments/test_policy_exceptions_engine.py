"""An exception a platform admin allowed for the environment reaches the container on the
real engine; withdrawn, the final request is refused and the stack says why."""

from __future__ import annotations

import pytest

from apps.activity.models import Event
from apps.deployments import reconciler
from apps.deployments.models import Stack
from tests.fixtures.engine import docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

SYSCTL = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    sysctls:
      net.ipv4.ip_unprivileged_port_start: "123"
    stop_grace_period: 1s
"""


def test_allowed_sysctl_reaches_the_container_and_is_refused_once_withdrawn(environment, image):
    environment.policy_exceptions = ["sysctls"]
    environment.save()
    stack = make_stack(environment, "kernel", SYSCTL, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    (container,) = engine_containers(stack)
    assert container["HostConfig"]["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "123"}
    value = docker("exec", container["Id"], "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert value == "123"

    # The admin withdraws the exception; the container has to be created again.
    environment.policy_exceptions = []
    environment.save()
    docker("rm", "-f", container["Id"])
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert engine_containers(stack) == []  # nothing reached the engine
    assert stack.state == Stack.State.FAILED
    assert "Sysctls" in stack.state_reason and "(rule: sysctls)" in stack.state_reason
    failures = Event.objects.filter(
        object_type="stack", object_id=str(stack.pk), outcome=Event.Outcome.FAILURE
    )
    assert any("rule: sysctls" in event.message for event in failures)
