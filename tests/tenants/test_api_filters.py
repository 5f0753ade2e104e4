"""`?tenant=` on the tenant-owned API lists (apps.tenants.filters.TenantSlugFilterSet)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as token_services

pytestmark = pytest.mark.django_db
RESOURCES = ["environments", "memberships", "invitations"]


def client_for(user) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="filters")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_foreign_tenant_finds_what_a_missing_one_finds(owner, tenant_a, tenant_b, resource):
    """The answer never tells whether another tenant's slug exists: both find nothing."""
    client = client_for(owner)
    foreign = client.get(f"/api/v1/{resource}/?tenant=globex")
    missing = client.get(f"/api/v1/{resource}/?tenant=no-such-tenant")
    assert foreign.status_code == missing.status_code == 200
    assert foreign.json() == missing.json()
    assert rows(foreign) == []


@pytest.mark.parametrize("resource", ["environments", "memberships"])
def test_the_filter_narrows_to_one_of_my_tenants(owner, tenant_a, resource):
    client = client_for(owner)
    client.post("/api/v1/tenants/", {"slug": "side", "name": "Side"}, format="json")
    assert {r["tenant"] for r in rows(client.get(f"/api/v1/{resource}/"))} == {"acme", "side"}
    assert {r["tenant"] for r in rows(client.get(f"/api/v1/{resource}/?tenant=side"))} == {"side"}
    assert {r["tenant"] for r in rows(client.get(f"/api/v1/{resource}/?tenant="))} == {
        "acme",
        "side",
    }


def test_the_filter_narrows_lists_only(owner, tenant_a):
    """A detail route looks its object up by id and reads no list filter."""
    dev = tenant_a.environments.get(slug="dev")
    response = client_for(owner).get(f"/api/v1/environments/{dev.pk}/?tenant=globex")
    assert response.status_code == 200 and response.json()["slug"] == "dev"
