"""A stack a platform admin deployed with an exception runs on the real engine; a
member's restart re-renders nothing and keeps it, and a container created again from
the stored spec gets it too; a member's scale is refused with the reason."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.core.roles import Role
from apps.deployments import exceptions, reconciler, services
from apps.deployments.models import Stack
from apps.tenants.models import Membership
from tests.fixtures.engine import docker, engine_containers

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

CAPS = """
services:
  web:
    image: {image}
    command: ["sleep", "3600"]
    cap_add: [NET_ADMIN]
    stop_grace_period: 1s
"""


def test_member_restart_keeps_an_admin_granted_exception(environment, image, superuser, member):
    Membership.objects.create(tenant=environment.tenant, user=member, role=Role.MEMBER)
    with exceptions.confirmed():
        stack = services.create_stack(
            superuser, environment, "caps", compose=CAPS.format(image=image)
        )
    reconciler.reconcile_stack(stack.pk)
    (before,) = engine_containers(stack)
    assert before["HostConfig"]["CapAdd"] == ["NET_ADMIN"]

    services.restart(member, Stack.objects.get(pk=stack.pk))
    reconciler.reconcile_stack(stack.pk)
    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    (after,) = engine_containers(stack)
    assert after["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    # A lost container is created again from the stored spec: the driver honours the
    # exception the admin granted it (spec["admin_exceptions"]), whoever asked.
    docker("rm", "-f", after["Id"])
    reconciler.reconcile_stack(stack.pk)
    (again,) = engine_containers(stack)
    assert again["Id"] != after["Id"] and again["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    with pytest.raises(ValidationError) as exc:
        services.scale(member, stack.services.get(name="web"), 2)
    assert "deployed by a platform admin" in str(exc.value)
