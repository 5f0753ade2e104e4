"""Tenants over the API: visibility, creation by anyone, edits by admins, deletion by owners."""

import pytest

from apps.activity.models import Event
from apps.core.roles import Role
from apps.tenants.models import Environment, Membership, Tenant
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


def test_list_shows_only_my_tenants_with_my_role(api_as, tenant_a, tenant_b, member):
    client, _ = api_as(member)
    rows = results(client.get("/api/v1/tenants/"))
    assert [(r["slug"], r["role"]) for r in rows] == [("acme", "member")]


def test_superuser_sees_every_tenant(api_as, tenant_a, tenant_b, superuser):
    client, _ = api_as(superuser)
    rows = results(client.get("/api/v1/tenants/"))
    assert {r["slug"] for r in rows} == {"acme", "globex"}
    assert all(r["role"] is None for r in rows)


def test_retrieve_foreign_tenant_is_404(api_as, tenant_a, tenant_b, outsider):
    client, _ = api_as(outsider)
    response = client.get("/api/v1/tenants/acme/")
    assert response.status_code == 404
    assert "Acme" not in response.content.decode()
    assert client.get("/api/v1/tenants/globex/").json()["name"] == "Globex Corp"


def test_anyone_signed_in_creates_a_tenant_and_owns_it(api_as, outsider):
    client, _ = api_as(outsider)
    response = client.post("/api/v1/tenants/", {"slug": "initech", "name": "Initech"})
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "owner"
    tenant = Tenant.objects.get(slug="initech")
    assert Membership.objects.get(tenant=tenant).user == outsider
    assert set(Environment.objects.filter(tenant=tenant).values_list("slug", flat=True)) == {
        "dev",
        "staging",
        "prod",
    }
    assert Event.objects.filter(action="tenant.create", tenant=tenant).exists()


def test_session_auth_works_too(session_api, outsider):
    response = session_api(outsider).post("/api/v1/tenants/", {"slug": "hooli"}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "hooli"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"slug": "Bad Slug!"}, "slug"),
        ({"slug": "-edge"}, "slug"),
        ({"slug": "x" * 41}, "slug"),
        ({}, "slug"),
        ({"slug": "acme"}, "slug"),
        ({"slug": "fine", "owner": "olivia"}, "owner"),
        ({"slug": "fine", "role": "owner"}, "role"),
        ({"slug": "fine", "is_staff": True}, "is_staff"),
        ({"slug": "fine", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_create_bad_input_is_400_naming_the_field(api_as, tenant_a, outsider, body, field):
    client, _ = api_as(outsider)
    response = client.post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Tenant.objects.filter(slug="fine").exists()


def test_tenant_bound_token_cannot_create_tenants(api_as, tenant_a, owner):
    client, _ = api_as(owner, tenant=tenant_a)
    response = client.post("/api/v1/tenants/", {"slug": "side-project"})
    assert response.status_code == 403


def test_admin_renames_tenant(api_as, tenant_a, member):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    client, _ = api_as(member)
    response = client.patch("/api/v1/tenants/acme/", {"name": "Acme Inc"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme Inc"
    tenant_a.refresh_from_db()
    assert (tenant_a.name, tenant_a.description) == ("Acme Inc", "")


def test_member_cannot_rename_tenant(api_as, tenant_a, member):
    client, _ = api_as(member)
    response = client.patch("/api/v1/tenants/acme/", {"name": "Mine"}, format="json")
    assert response.status_code == 403
    tenant_a.refresh_from_db()
    assert tenant_a.name == "Acme Rockets"


@pytest.mark.parametrize("field", ["slug", "role", "owner", "id"])
def test_patch_refuses_fields_that_cannot_change(api_as, tenant_a, owner, field):
    client, _ = api_as(owner)
    response = client.patch("/api/v1/tenants/acme/", {field: "other"}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_patch_blank_name_is_400(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    response = client.patch("/api/v1/tenants/acme/", {"name": ""}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_put_is_not_offered(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    response = client.put("/api/v1/tenants/acme/", {"name": "X"}, format="json")
    assert response.status_code == 405


def test_only_owner_deletes(api_as, tenant_a, owner, member):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    admin_client, _ = api_as(member)
    assert admin_client.delete("/api/v1/tenants/acme/").status_code == 403
    owner_client, _ = api_as(owner)
    assert owner_client.delete("/api/v1/tenants/acme/").status_code == 204
    assert not Tenant.objects.filter(slug="acme").exists()


def test_outsider_cannot_touch_foreign_tenant(api_as, tenant_a, tenant_b, outsider):
    client, _ = api_as(outsider)
    assert client.patch("/api/v1/tenants/acme/", {"name": "x"}, format="json").status_code == 404
    assert client.delete("/api/v1/tenants/acme/").status_code == 404
    assert Tenant.objects.filter(slug="acme", name="Acme Rockets").exists()


def test_anonymous_is_401(client, tenant_a):
    assert client.get("/api/v1/tenants/").status_code in (401, 403)
    assert client.get("/api/v1/tenants/acme/").status_code in (401, 403)
