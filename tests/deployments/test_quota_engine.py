"""Over its quota, a tenant's deploy and scale through the API are a 400 and the engine is
the judge that nothing happened: no container beyond what ran before, even after a
reconcile pass of the host."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.activity.models import Event
from apps.deployments import reconciler
from apps.deployments.models import Revision, Stack
from apps.tenants import services as tenant_services
from tests.fixtures.engine import docker

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy: {{replicas: {replicas}}}
"""


def api_for(user) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="it")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def running(environment) -> int:
    label = f"label=io.berth.tenant={environment.tenant.slug}"
    return len(docker("ps", "-q", "--filter", label).split())


def test_over_quota_nothing_reaches_the_engine(environment, image, host, owner, superuser):
    environment.hosts.add(host)
    tenant = environment.tenant
    tenant_services.set_quotas(actor=superuser, tenant=tenant, values={"containers": 2})
    api = api_for(owner)
    body = {"environment": environment.pk, "name": "ok"}
    answer = api.post(
        "/api/v1/stacks/",
        {**body, "compose": COMPOSE.format(image=image, replicas=2)},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    reconciler.reconcile_stack(answer.json()["id"])
    assert running(environment) == 2

    refused = api.post(
        "/api/v1/stacks/",
        {**body, "name": "hog", "compose": COMPOSE.format(image=image, replicas=1)},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "replicas": [f"Tenant {tenant.slug}'s quota allows 2 containers; this change would make 3."]
    }
    stack = Stack.objects.get(tenant=tenant)
    app = stack.services.get(name="app")
    scaled = api.post(f"/api/v1/services/{app.pk}/scale/", {"replicas": 5}, format="json")
    assert scaled.status_code == 400 and "replicas" in scaled.json()

    assert list(Stack.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["ok"]
    assert Revision.objects.filter(stack__tenant=tenant).count() == 1
    assert not Event.objects.filter(tenant=tenant, action="stack.scale").exists()
    reconciler.reconcile_stack(stack.pk)
    reconciler.reconcile_host(host.pk)
    assert running(environment) == 2  # the engine ran nothing more
