"""Stacks are not deployable to a Swarm cluster yet (issue 14): an environment targeting
one refuses new stacks with a reason, the reconciler never places a stack on a swarm
host (it fails the stack with the same reason), and the environment admin refuses to
pin a swarm host."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.deployments import reconciler, services
from apps.deployments.models import Stack
from apps.hosts import services as host_services
from apps.hosts.models import SWARM_STACKS_NOT_AVAILABLE, Host
from apps.tenants.admin import EnvironmentAdminForm
from tests.deployments.stack_fixtures import COMPOSE

pytestmark = pytest.mark.django_db


@pytest.fixture
def swarm(db) -> Host:
    return host_services.register_host(
        actor=None, name="cluster", endpoint="tcp://10.0.0.2:2376", kind="swarm"
    )


def test_a_stack_in_an_environment_on_a_swarm_is_refused(member, env_a, swarm):
    env_a.hosts.add(swarm)
    with pytest.raises(ValidationError) as caught:
        services.create_stack(member, env_a, "shop", compose=COMPOSE)
    assert caught.value.messages == [SWARM_STACKS_NOT_AVAILABLE]
    assert not Stack.objects.exists()


def test_the_reconciler_fails_such_a_stack_instead_of_using_the_manager(member, env_a, swarm):
    stack = services.create_stack(member, env_a, "shop", compose=COMPOSE)
    env_a.hosts.add(swarm)  # pinned afterwards, behind the service layer's back
    assert reconciler.target_host(stack) is None or not reconciler.target_host(stack).is_swarm
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert (stack.state, stack.state_reason) == (Stack.State.FAILED, SWARM_STACKS_NOT_AVAILABLE)


def test_a_swarm_is_never_the_fallback_host(member, env_a, swarm):
    Host.objects.filter(pk=swarm.pk).update(state=Host.State.ACTIVE, name="local")
    stack = services.create_stack(member, env_a, "shop", compose=COMPOSE)
    assert reconciler.target_host(stack) is None


def test_the_environment_admin_refuses_a_swarm_host(env_a, swarm):
    form = EnvironmentAdminForm(
        instance=env_a,
        data={
            "tenant": env_a.tenant.pk,
            "slug": env_a.slug,
            "name": env_a.name,
            "hosts": [swarm.pk],
        },
    )
    assert not form.is_valid()
    assert "not available yet" in form.errors["hosts"][0]
