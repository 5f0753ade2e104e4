"""Tenant quotas through the service layer and the API (real PostgreSQL): a change over the
quota is a 400 naming it, and nothing is written; two deploys racing cannot both slip
under; only platform admins set quotas, and the tenant sees them with its usage."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.activity.models import Event
from apps.deployments import services
from apps.deployments.models import Revision, Service, Stack
from apps.tenants import services as tenant_services
from apps.tenants.models import TenantQuota
from tests.deployments.stack_fixtures import COMPOSE

pytestmark = pytest.mark.django_db

HOG = """
services:
  web:
    image: berth-demo/web:1.0
    deploy: {replicas: 3}
"""


def client_for(user) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def limit(tenant, superuser, **values):
    tenant_services.set_quotas(actor=superuser, tenant=tenant, values=values)


def written(tenant) -> tuple[int, int, int]:
    return (
        Stack.objects.filter(tenant=tenant).count(),
        Revision.objects.filter(stack__tenant=tenant).count(),
        Event.objects.filter(tenant=tenant, action__startswith="stack.").count(),
    )


def test_deploy_over_the_container_quota_is_a_400_and_writes_nothing(
    member, superuser, env_a, stack, django_capture_on_commit_callbacks
):
    tenant = env_a.tenant
    limit(tenant, superuser, containers=4)  # `stack` runs 2 (web, worker)
    before = written(tenant)
    body = {"name": "hog", "environment": env_a.pk, "compose": HOG}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(member).post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {
        "replicas": ["Tenant acme's quota allows 4 containers; this change would make 5."]
    }
    assert written(tenant) == before  # no stack, no revision, no event
    assert [c for c in callbacks if "reconcile" in c.__qualname__ + repr(c)] == []


def test_scale_over_quota_is_refused_and_scale_within_is_not(member, superuser, stack):
    limit(stack.tenant, superuser, containers=3)
    web = stack.services.get(name="web")
    api = client_for(member)
    response = api.post(f"/api/v1/services/{web.pk}/scale/", {"replicas": 3}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "replicas": ["Tenant acme's quota allows 3 containers; this change would make 4."]
    }
    assert Revision.objects.filter(stack=stack).count() == 1
    response = api.post(f"/api/v1/services/{web.pk}/scale/", {"replicas": 2}, format="json")
    assert response.status_code == 200, response.content
    assert Service.objects.get(pk=web.pk).scale == 2


def test_scaling_down_after_the_quota_was_lowered_is_allowed(member, superuser, stack):
    web = stack.services.get(name="web")
    services.scale(member, web, 4)  # 5 containers
    limit(stack.tenant, superuser, containers=2)
    assert services.scale(member, Service.objects.get(pk=web.pk), 3).scale == 3
    with pytest.raises(ValidationError) as exc:
        services.scale(member, Service.objects.get(pk=web.pk), 4)
    assert set(exc.value.message_dict) == {"replicas"}


def test_stack_quota_counts_stopped_stacks(member, superuser, env_a, stack):
    limit(env_a.tenant, superuser, stacks=1)
    services.stop(member, stack)
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "second", compose=COMPOSE)
    assert exc.value.message_dict == {
        "stacks": ["Tenant acme's quota allows 1 stack; this change would make 2."]
    }


def test_platform_admin_is_held_to_the_tenant_quota(superuser, env_a, stack):
    limit(env_a.tenant, superuser, containers=2)
    with pytest.raises(ValidationError) as exc:
        services.create_stack(superuser, env_a, "admin-stack", compose=COMPOSE)
    assert "replicas" in exc.value.message_dict
    limit(env_a.tenant, superuser, containers=0)  # unlimited again
    assert services.create_stack(superuser, env_a, "admin-stack", compose=COMPOSE).pk


def test_compose_pids_and_memory_cannot_pass_the_quota(member, superuser, env_a):
    limit(env_a.tenant, superuser, pids=1000, memory=256 << 20)
    greedy = """
services:
  a:
    image: x
    deploy: {resources: {limits: {pids: 100000, memory: 1g}}}
"""
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "greedy", compose=greedy)
    assert exc.value.message_dict == {
        "memory": ["Tenant acme's quota allows 256 MiB of memory; this change would make 1 GiB."],
        "pids": ["Tenant acme's quota allows 1000 processes per container; service a asks 100000."],
    }
    # The environment's defaults (512 MiB, 512 pids) fit the pids quota, not the memory one.
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "plain", compose="services: {a: {image: x}}")
    assert set(exc.value.message_dict) == {"memory"}
    env_a.default_pids_limit = 0  # unlimited by default: refused under a pids quota
    env_a.default_memory_limit = 64 << 20
    env_a.save()
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "plain", compose="services: {a: {image: x}}")
    assert exc.value.message_dict == {
        "pids": [
            "Tenant acme's quota allows 1000 processes per container; service a asks no limit."
        ]
    }


def test_cpu_quota_asks_every_service_to_set_cpus(member, superuser, env_a):
    limit(env_a.tenant, superuser, cpus="1.5")
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "shop", compose=COMPOSE)
    assert exc.value.message_dict["cpus"][0].endswith(
        "service web must set cpus (deploy.resources.limits.cpus or cpus)."
    )
    sized = "services: {a: {image: x, cpus: 0.5, deploy: {replicas: 3}}}"
    assert services.create_stack(member, env_a, "sized", compose=sized).pk
    with pytest.raises(ValidationError) as exc:
        services.scale(member, Service.objects.get(stack__name="sized", name="a"), 4)
    assert exc.value.message_dict == {
        "cpus": ["Tenant acme's quota allows 1.5 CPUs; this change would make 2."]
    }


def test_rollback_and_redeploy_are_checked(member, superuser, env_a, stack):
    web = stack.services.get(name="web")
    services.scale(member, web, 3)  # r2: 4 containers
    services.scale(member, Service.objects.get(pk=web.pk), 1)  # r3: 2 containers
    limit(env_a.tenant, superuser, containers=3)
    stack.refresh_from_db()
    r2 = stack.revisions.get(number=2)
    with pytest.raises(ValidationError) as exc:
        services.rollback(member, stack, r2)
    assert "replicas" in exc.value.message_dict
    assert services.redeploy(member, Stack.objects.get(pk=stack.pk)).pk  # still 2: fine


# --- setting quotas ----------------------------------------------------------------------------


def test_only_platform_admins_set_quotas(owner, tenant_a):
    with pytest.raises(PermissionDenied):
        tenant_services.set_quotas(actor=owner, tenant=tenant_a, values={"stacks": 100})


@pytest.mark.parametrize(
    "values, field",
    [
        ({"stacks": -1}, "stacks"),
        ({"containers": "many"}, "containers"),
        ({"cpus": "0.001"}, "cpus"),
        ({"memory": 1.5}, "memory"),
        ({"pids": True}, "pids"),
        ({"registry_storage": "-5"}, "registry_storage"),
        ({"disk": 1}, "disk"),
    ],
)
def test_bad_quota_values_name_the_field(superuser, tenant_a, values, field):
    with pytest.raises(ValidationError) as exc:
        tenant_services.set_quotas(actor=superuser, tenant=tenant_a, values=values)
    assert set(exc.value.message_dict) == {field}


def test_quota_api_shows_usage_and_only_admins_change_it(member, superuser, stack, settings):
    mine = client_for(member).get("/api/v1/tenants/acme/quota/")
    assert mine.status_code == 200, mine.content
    data = mine.json()
    assert data["containers"] == {
        "label": "Containers (replicas)",
        "used": 2,
        "limit": 0,
        "unit": "count",
        "per_container": False,
    }
    assert data["stacks"]["used"] == 1 and data["memory"]["used"] == 2 * (512 << 20)
    assert data["registry_storage"]["limit"] == 0
    refused = client_for(member).patch("/api/v1/tenants/acme/quota/", {"stacks": 9}, format="json")
    assert refused.status_code == 403
    admin = client_for(superuser)
    body = {"stacks": 9, "cpus": "2.5", "registry_storage": 1 << 30}
    answer = admin.patch("/api/v1/tenants/acme/quota/", body, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["stacks"]["limit"] == 9 and answer.json()["cpus"]["limit"] == 2.5
    assert answer.json()["registry_storage"]["limit"] == 1 << 30
    bad = admin.patch("/api/v1/tenants/acme/quota/", {"stacks": "x"}, format="json")
    assert bad.status_code == 400 and "stacks" in bad.json()
    foreign = client_for(member).get("/api/v1/tenants/globex/quota/")
    assert foreign.status_code == 404


def test_new_tenants_start_with_the_configured_defaults(owner, settings):
    settings.BERTH_TENANT_QUOTA_DEFAULTS = {"stacks": 5, "containers": 20, "pids": 1024}
    tenant = tenant_services.create_tenant(actor=owner, slug="fresh")
    quota = TenantQuota.objects.get(tenant=tenant)
    assert (quota.stacks, quota.containers, quota.memory, quota.pids) == (5, 20, 0, 1024)


# --- two deploys at once -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deploys_cannot_both_slip_under(member, superuser, env_a):
    limit(env_a.tenant, superuser, containers=3)  # room for one stack of 2, not two
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def deploy(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            services.create_stack(member, env_a, name, compose=COMPOSE)
            outcomes.append("ok")
        except ValidationError as exc:
            outcomes.append(",".join(exc.message_dict))
        finally:
            connection.close()

    threads = [threading.Thread(target=deploy, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok", "replicas"]
    assert Stack.objects.filter(tenant=env_a.tenant).count() == 1
