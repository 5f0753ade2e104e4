"""Invitations over the API: admins invite, the link's token is shown once, the invitee accepts."""

import pytest

from apps.core.roles import Role
from apps.tenants.models import Invitation, Membership
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


def invite(client, email="oscar@example.test", role="member", tenant="acme"):
    body = {"tenant": tenant, "email": email, "role": role}
    return client.post("/api/v1/invitations/", body, format="json")


def test_owner_invites_and_gets_the_token_once(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    response = invite(client)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "pending"
    assert data["invited_by"] == "olivia"
    assert data["token"] and data["token"] in data["accept_url"]
    assert data["accept_url"].startswith("http")
    again = client.get(f"/api/v1/invitations/{data['id']}/").json()
    assert "token" not in again and "accept_url" not in again
    assert data["token"] not in str(results(client.get("/api/v1/invitations/")))


def test_invitee_accepts_with_the_token(api_as, tenant_a, owner, outsider):
    owner_client, _ = api_as(owner)
    raw = invite(owner_client, role="viewer").json()["token"]
    client, _ = api_as(outsider)
    response = client.post("/api/v1/invitations/accept/", {"token": raw}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["tenant"] == "acme"
    assert Membership.objects.get(tenant=tenant_a, user=outsider).role == Role.VIEWER
    again = client.post("/api/v1/invitations/accept/", {"token": raw}, format="json")
    assert again.status_code == 400
    assert "token" in again.json()


def test_accept_bound_to_address(api_as, tenant_a, owner, make_user):
    owner_client, _ = api_as(owner)
    raw = invite(owner_client).json()["token"]
    stranger, _ = api_as(make_user("mallory"))
    response = stranger.post("/api/v1/invitations/accept/", {"token": raw}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()


@pytest.mark.parametrize("body, field", [({"token": "nope"}, "token"), ({}, "token")])
def test_accept_bad_token(api_as, outsider, body, field):
    client, _ = api_as(outsider)
    response = client.post("/api/v1/invitations/accept/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_revoke(api_as, tenant_a, owner, outsider):
    client, _ = api_as(owner)
    data = invite(client).json()
    response = client.post(f"/api/v1/invitations/{data['id']}/revoke/")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert client.post(f"/api/v1/invitations/{data['id']}/revoke/").status_code == 400
    invitee, _ = api_as(outsider)
    accept = invitee.post("/api/v1/invitations/accept/", {"token": data["token"]}, format="json")
    assert accept.status_code == 400


@pytest.mark.parametrize(
    "body, field",
    [
        ({"tenant": "acme", "email": "not-an-address"}, "email"),
        ({"tenant": "acme", "email": "x@example.test", "role": "boss"}, "role"),
        ({"tenant": "globex", "email": "x@example.test"}, "tenant"),
        ({"email": "x@example.test"}, "tenant"),
        ({"tenant": "acme", "email": "marcus@example.test"}, "email"),
        ({"tenant": "acme", "email": "x@example.test", "invited_by": "vera"}, "invited_by"),
        ({"tenant": "acme", "email": "x@example.test", "accepted_at": "2020-01-01"}, "accepted_at"),
    ],
)
def test_bad_invitation_is_400(api_as, tenant_a, tenant_b, owner, body, field):
    client, _ = api_as(owner)
    response = client.post("/api/v1/invitations/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Invitation.objects.exists()


def test_admin_cannot_invite_an_owner(api_as, tenant_a, member):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    client, _ = api_as(member)
    assert invite(client, role="owner").status_code == 403
    assert invite(client, role="admin").status_code == 201


def test_members_neither_see_nor_send_invitations(api_as, tenant_a, owner, member):
    owner_client, _ = api_as(owner)
    data = invite(owner_client).json()
    client, _ = api_as(member)
    assert results(client.get("/api/v1/invitations/")) == []
    assert client.get(f"/api/v1/invitations/{data['id']}/").status_code == 404
    assert client.post(f"/api/v1/invitations/{data['id']}/revoke/").status_code == 404
    response = invite(client, email="friend@example.test")
    assert response.status_code == 400
    assert response.json() == {"tenant": ["No such tenant."]}


def test_foreign_invitation_is_404(api_as, tenant_a, tenant_b, owner, outsider):
    owner_client, _ = api_as(owner)
    data = invite(owner_client, email="z@example.test").json()
    client, _ = api_as(outsider)
    assert client.get(f"/api/v1/invitations/{data['id']}/").status_code == 404
    assert client.post(f"/api/v1/invitations/{data['id']}/revoke/").status_code == 404
    assert Invitation.objects.get(pk=data["id"]).status == "pending"
