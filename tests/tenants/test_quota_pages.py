"""Quotas on the tenant's page (everyone in the tenant sees them with usage), the quota
form (platform admins only) and the admin site (through the service)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.activity.models import Event
from apps.deployments import services as stack_services
from apps.registry.models import TenantRegistryQuota
from apps.tenants.models import TenantQuota
from tests.conftest import login
from tests.deployments.stack_fixtures import COMPOSE

pytestmark = pytest.mark.django_db
MiB = 1 << 20


def rows(html: str) -> str:
    start = html.index('id="quotas"')
    return html[start : html.index("</section>", start)]


def test_members_see_quotas_with_usage_but_no_way_to_set_them(client, member, viewer, tenant_a):
    env = tenant_a.environments.get(slug="dev")
    stack_services.create_stack(member, env, "shop", compose=COMPOSE)  # 2 containers
    TenantQuota.objects.filter(tenant=tenant_a).update(containers=10)
    html = login(client, viewer).get(reverse("tenants:detail", args=["acme"])).content.decode()
    card = rows(html)
    assert 'data-quota="containers"' in card and "Registry storage" in card
    assert '<progress value="20"' in card  # 2 of 10 containers
    assert "unlimited" in card
    assert reverse("tenants:quota", args=["acme"]) not in html


def test_tenant_owner_cannot_open_the_quota_form(client, owner, tenant_a):
    response = login(client, owner).get(reverse("tenants:quota", args=["acme"]))
    assert response.status_code == 404
    response = client.post(reverse("tenants:quota", args=["acme"]), {"stacks": 1000})
    assert response.status_code == 404
    assert TenantQuota.objects.get(tenant=tenant_a).stacks == 0


def test_platform_admin_sets_quotas_on_the_page(client, superuser, tenant_a):
    login(client, superuser)
    page = client.get(reverse("tenants:detail", args=["acme"])).content.decode()
    assert reverse("tenants:quota", args=["acme"]) in page
    form = {
        "stacks": 5,
        "containers": 20,
        "memory": 4096,
        "cpus": "2.5",
        "pids": 1024,
        "registry_storage": 100,
    }
    response = client.post(reverse("tenants:quota", args=["acme"]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = TenantQuota.objects.get(tenant=tenant_a)
    assert (quota.stacks, quota.containers, quota.memory, str(quota.cpus), quota.pids) == (
        5,
        20,
        4096 * MiB,
        "2.50",
        1024,
    )
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).quota_bytes == 100 * MiB
    assert Event.objects.filter(action="tenant.quota", tenant=tenant_a).exists()


def test_bad_quota_input_is_a_form_error(client, superuser, tenant_a):
    login(client, superuser)
    form = {"stacks": -1, "containers": 0, "memory": 0, "cpus": "0.001", "pids": 0}
    response = client.post(reverse("tenants:quota", args=["acme"]), form)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"stacks", "cpus", "registry_storage"} <= set(errors)


def test_admin_site_sets_quotas_through_the_service(client, superuser, tenant_a):
    login(client, superuser)
    quota = TenantQuota.objects.get(tenant=tenant_a)
    url = reverse("admin:tenants_tenantquota_change", args=[quota.pk])
    assert client.get(url).status_code == 200
    form = {
        "stacks": 3,
        "containers": 0,
        "memory": 0,
        "cpus": "0",
        "pids": 0,
        "registry_storage": 5 * MiB,
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert TenantQuota.objects.get(tenant=tenant_a).stacks == 3
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).quota_bytes == 5 * MiB
    assert Event.objects.filter(action="tenant.quota", tenant=tenant_a).exists()
    bad = client.post(url, {**form, "stacks": 10**9})
    assert bad.status_code == 200 and "stacks" in bad.context["adminform"].form.errors
