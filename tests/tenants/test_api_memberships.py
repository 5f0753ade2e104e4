"""Memberships over the API: roles change through the service; nobody grants above their own."""

import pytest

from apps.core.roles import Role
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


def membership(tenant, user):
    return Membership.objects.get(tenant=tenant, user=user)


def url(m) -> str:
    return f"/api/v1/memberships/{m.pk}/"


def test_members_see_their_colleagues(api_as, tenant_a, tenant_b, viewer):
    client, _ = api_as(viewer)
    rows = results(client.get("/api/v1/memberships/"))
    assert {(r["user"], r["role"]) for r in rows} == {
        ("olivia", "owner"),
        ("marcus", "member"),
        ("vera", "viewer"),
    }
    assert {r["tenant"] for r in rows} == {"acme"}


def test_filter_by_tenant(api_as, tenant_a, owner):
    side = tenant_services.create_tenant(actor=owner, slug="side")
    client, _ = api_as(owner)
    rows = results(client.get("/api/v1/memberships/?tenant=side"))
    assert [(r["tenant"], r["user"]) for r in rows] == [(side.slug, "olivia")]


def test_owner_changes_role(api_as, tenant_a, owner, member):
    client, _ = api_as(owner)
    response = client.patch(url(membership(tenant_a, member)), {"role": "admin"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "admin"
    assert membership(tenant_a, member).role == Role.ADMIN


def test_bad_role_is_400(api_as, tenant_a, owner, member):
    client, _ = api_as(owner)
    response = client.patch(url(membership(tenant_a, member)), {"role": "boss"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()


def test_role_is_required(api_as, tenant_a, owner, member):
    client, _ = api_as(owner)
    response = client.patch(url(membership(tenant_a, member)), {}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()


@pytest.mark.parametrize("field", ["user", "tenant", "is_staff", "email"])
def test_other_fields_are_refused(api_as, tenant_a, owner, member, field):
    client, _ = api_as(owner)
    body = {"role": "admin", field: "olivia"}
    response = client.patch(url(membership(tenant_a, member)), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert membership(tenant_a, member).role == Role.MEMBER


def test_member_cannot_promote_themselves(api_as, tenant_a, member):
    client, _ = api_as(member)
    response = client.patch(url(membership(tenant_a, member)), {"role": "owner"}, format="json")
    assert response.status_code == 403
    assert membership(tenant_a, member).role == Role.MEMBER


def test_admin_cannot_grant_owner(api_as, tenant_a, member, viewer):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    client, _ = api_as(member)
    response = client.patch(url(membership(tenant_a, viewer)), {"role": "owner"}, format="json")
    assert response.status_code == 403
    response = client.patch(url(membership(tenant_a, viewer)), {"role": "admin"}, format="json")
    assert response.status_code == 200


def test_last_owner_cannot_be_demoted(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    response = client.patch(url(membership(tenant_a, owner)), {"role": "admin"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()


def test_there_is_no_create(api_as, tenant_a, owner, outsider):
    client, _ = api_as(owner)
    body = {"tenant": "acme", "user": "oscar", "role": "owner"}
    assert client.post("/api/v1/memberships/", body, format="json").status_code == 405
    assert not Membership.objects.filter(user=outsider).exists()


def test_owner_removes_member(api_as, tenant_a, owner, member):
    client, _ = api_as(owner)
    assert client.delete(url(membership(tenant_a, member))).status_code == 204
    assert not Membership.objects.filter(tenant=tenant_a, user=member).exists()


def test_member_cannot_remove_others_but_may_leave(api_as, tenant_a, member, viewer):
    client, _ = api_as(member)
    assert client.delete(url(membership(tenant_a, viewer))).status_code == 403
    assert client.delete(url(membership(tenant_a, member))).status_code == 204


def test_foreign_membership_is_404(api_as, tenant_a, tenant_b, outsider, member):
    client, _ = api_as(outsider)
    target = membership(tenant_a, member)
    assert client.get(url(target)).status_code == 404
    assert client.patch(url(target), {"role": "viewer"}, format="json").status_code == 404
    assert client.delete(url(target)).status_code == 404
    assert membership(tenant_a, member).role == Role.MEMBER
