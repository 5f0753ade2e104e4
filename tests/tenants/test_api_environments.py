"""Environments over the API: the tenant comes from the body as a slug, checked server-side."""

import pytest

from apps.tenants import services as tenant_services
from apps.tenants.models import Environment
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


def env(tenant, slug="dev"):
    return Environment.objects.get(tenant=tenant, slug=slug)


def test_list_is_limited_to_my_tenants(api_as, tenant_a, tenant_b, viewer):
    client, _ = api_as(viewer)
    rows = results(client.get("/api/v1/environments/"))
    assert {(r["tenant"], r["slug"]) for r in rows} == {
        ("acme", "dev"),
        ("acme", "staging"),
        ("acme", "prod"),
    }


def test_list_filters_by_tenant(api_as, tenant_a, tenant_b, superuser):
    client, _ = api_as(superuser)
    rows = results(client.get("/api/v1/environments/?tenant=globex"))
    assert {r["tenant"] for r in rows} == {"globex"}


def test_owner_creates_environment(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    body = {"tenant": "acme", "slug": "qa", "name": "QA", "description": "for testers"}
    response = client.post("/api/v1/environments/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["tenant"] == "acme"
    assert env(tenant_a, "qa").description == "for testers"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"tenant": "acme", "slug": "QA env"}, "slug"),
        ({"tenant": "acme", "slug": "dev"}, "slug"),
        ({"tenant": "acme"}, "slug"),
        ({"slug": "qa"}, "tenant"),
        ({"tenant": "nope", "slug": "qa"}, "tenant"),
        ({"tenant": "acme", "slug": "qa", "id": 5}, "id"),
        ({"tenant": "acme", "slug": "qa", "hosts": [1]}, "hosts"),
    ],
)
def test_create_bad_input_is_400(api_as, tenant_a, owner, body, field):
    client, _ = api_as(owner)
    response = client.post("/api/v1/environments/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Environment.objects.filter(slug="qa").exists()


def test_foreign_tenant_slug_is_no_such_tenant(api_as, tenant_a, tenant_b, owner):
    client, _ = api_as(owner)
    response = client.post("/api/v1/environments/", {"tenant": "globex", "slug": "qa"})
    assert response.status_code == 400
    assert response.json() == {"tenant": ["No such tenant."]}
    assert not Environment.objects.filter(tenant=tenant_b, slug="qa").exists()


def test_member_cannot_create_in_own_tenant(api_as, tenant_a, member):
    client, _ = api_as(member)
    response = client.post("/api/v1/environments/", {"tenant": "acme", "slug": "qa"})
    assert response.status_code == 400
    assert "tenant" in response.json()


def test_token_bound_elsewhere_cannot_create(api_as, tenant_a, owner):
    side = tenant_services.create_tenant(actor=owner, slug="side")
    client, _ = api_as(owner, tenant=side)
    response = client.post("/api/v1/environments/", {"tenant": "acme", "slug": "qa"})
    assert response.status_code == 400
    assert response.json() == {"tenant": ["No such tenant."]}


def test_patch_name_and_description(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    target = env(tenant_a)
    response = client.patch(
        f"/api/v1/environments/{target.pk}/", {"description": "scratch"}, format="json"
    )
    assert response.status_code == 200, response.content
    target.refresh_from_db()
    assert (target.name, target.description) == ("Dev", "scratch")


@pytest.mark.parametrize("field, value", [("tenant", "globex"), ("slug", "renamed"), ("x", 1)])
def test_patch_refuses_tenant_and_slug(api_as, tenant_a, tenant_b, owner, field, value):
    client, _ = api_as(owner)
    target = env(tenant_a)
    response = client.patch(f"/api/v1/environments/{target.pk}/", {field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    target.refresh_from_db()
    assert (target.tenant, target.slug) == (tenant_a, "dev")


def test_member_cannot_patch(api_as, tenant_a, member):
    client, _ = api_as(member)
    target = env(tenant_a)
    response = client.patch(f"/api/v1/environments/{target.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403


def test_delete_and_keep_the_last_one(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    for slug in ("dev", "staging"):
        assert client.delete(f"/api/v1/environments/{env(tenant_a, slug).pk}/").status_code == 204
    response = client.delete(f"/api/v1/environments/{env(tenant_a, 'prod').pk}/")
    assert response.status_code == 400
    assert "environment" in response.json()


def test_foreign_environment_is_404(api_as, tenant_a, tenant_b, outsider):
    client, _ = api_as(outsider)
    target = env(tenant_a)
    assert client.get(f"/api/v1/environments/{target.pk}/").status_code == 404
    assert client.delete(f"/api/v1/environments/{target.pk}/").status_code == 404
    assert Environment.objects.filter(pk=target.pk).exists()
