"""API tokens: their own endpoint, and what a token may do once it authenticates."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.tenants import services as tenant_services
from apps.tenants.models import Environment, Membership
from tests.fixtures.api import bearer_client, results

pytestmark = pytest.mark.django_db


def create(client, **body):
    return client.post("/api/v1/tokens/", {"name": "ci", **body}, format="json")


# --- the /tokens/ endpoint -------------------------------------------------------------


def test_create_returns_raw_token_once(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    response = create(client, tenant="acme", read_only=True, expires_days=30)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["token"].startswith("berth_" + data["prefix"])
    assert (data["tenant"], data["scope"], data["status"]) == ("acme", "read", "active")
    assert data["expires_at"]
    token = ApiToken.objects.get(pk=data["id"])
    assert data["token"] not in token.key_hash
    listed = client.get(f"/api/v1/tokens/{data['id']}/").json()
    assert "token" not in listed and listed["prefix"] == data["prefix"]
    new_client = bearer_client(data["token"])
    assert new_client.get("/api/v1/tenants/").status_code == 200


def test_list_shows_only_my_tokens(api_as, tenant_a, owner, member, superuser):
    api_as(member)
    client, mine = api_as(owner)
    assert [r["id"] for r in results(client.get("/api/v1/tokens/"))] == [mine.pk]
    admin_client, admin_token = api_as(superuser)
    assert [r["id"] for r in results(admin_client.get("/api/v1/tokens/"))] == [admin_token.pk]


def test_someone_elses_token_is_404(api_as, tenant_a, owner, member):
    _, theirs = api_as(member)
    client, _ = api_as(owner)
    assert client.get(f"/api/v1/tokens/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/v1/tokens/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_delete_revokes(api_as, owner):
    client, _ = api_as(owner)
    other = create(client).json()
    assert client.delete(f"/api/v1/tokens/{other['id']}/").status_code == 204
    assert client.get(f"/api/v1/tokens/{other['id']}/").json()["status"] == "revoked"
    assert bearer_client(other["token"]).get("/api/v1/tenants/").status_code == 401
    again = client.delete(f"/api/v1/tokens/{other['id']}/")
    assert again.status_code == 400


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"expires_days": 0}, "expires_days"),
        ({"expires_days": 99999}, "expires_days"),
        ({"expires_days": "soon"}, "expires_days"),
        ({"read_only": "maybe"}, "read_only"),
        ({"tenant": "globex"}, "tenant"),
        ({"tenant": "no-such"}, "tenant"),
        ({"user": "marcus"}, "user"),
        ({"prefix": "abc"}, "prefix"),
        ({"scope": "admin"}, "scope"),
    ],
)
def test_bad_token_request_is_400(api_as, tenant_a, tenant_b, owner, body, field):
    client, _ = api_as(owner)
    response = client.post("/api/v1/tokens/", {"name": "ci", **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ApiToken.objects.filter(user=owner).count() == 1


def test_read_only_token_cannot_create_tokens(api_as, owner):
    client, _ = api_as(owner, read_only=True)
    assert create(client, read_only=True).status_code == 403
    assert ApiToken.objects.filter(user=owner).count() == 1


def test_tenant_bound_token_mints_only_for_its_tenant(api_as, tenant_a, owner):
    side = tenant_services.create_tenant(actor=owner, slug="side")
    client, _ = api_as(owner, tenant=tenant_a)
    response = create(client, tenant=side.slug)
    assert response.status_code == 400
    assert "tenant" in response.json()
    assert create(client).json()["tenant"] == "acme"
    assert create(client, tenant="acme").status_code == 201


def test_viewer_cannot_get_a_write_token(api_as, tenant_a, viewer):
    client, _ = api_as(viewer)
    response = create(client, tenant="acme", read_only=False)
    assert response.status_code == 400
    assert "read_only" in response.json()
    assert "read_only" in create(client, tenant="acme").json()
    granted = create(client, tenant="acme", read_only=True)
    assert granted.status_code == 201
    assert granted.json()["scope"] == "read"


def test_member_gets_a_write_token(api_as, tenant_a, member):
    client, _ = api_as(member)
    assert create(client, tenant="acme").json()["scope"] == "write"


# --- what a token may do ---------------------------------------------------------------


def test_read_only_token_refused_on_writes(api_as, tenant_a, owner):
    client, _ = api_as(owner, read_only=True)
    assert client.get("/api/v1/tenants/acme/").status_code == 200
    env = Environment.objects.get(tenant=tenant_a, slug="dev")
    writes = [
        client.post("/api/v1/tenants/", {"slug": "new-one"}),
        client.patch("/api/v1/tenants/acme/", {"name": "x"}, format="json"),
        client.delete("/api/v1/tenants/acme/"),
        client.post("/api/v1/environments/", {"tenant": "acme", "slug": "qa"}),
        client.delete(f"/api/v1/environments/{env.pk}/"),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    assert Environment.objects.filter(pk=env.pk).exists()


def test_tenant_bound_token_cannot_see_the_users_other_tenant(api_as, tenant_a, owner):
    side = tenant_services.create_tenant(actor=owner, slug="side")
    client, _ = api_as(owner, tenant=tenant_a)
    assert [r["slug"] for r in results(client.get("/api/v1/tenants/"))] == ["acme"]
    assert client.get("/api/v1/tenants/side/").status_code == 404
    side_env = Environment.objects.filter(tenant=side).first()
    assert client.get(f"/api/v1/environments/{side_env.pk}/").status_code == 404
    assert {r["tenant"] for r in results(client.get("/api/v1/environments/"))} == {"acme"}
    assert {r["tenant"] for r in results(client.get("/api/v1/events/"))} == {"acme"}


def test_superuser_tenant_bound_token_is_narrowed_too(api_as, tenant_a, tenant_b, superuser):
    Membership.objects.create(tenant=tenant_a, user=superuser, role="admin")
    client, _ = api_as(superuser, tenant=tenant_a)
    assert [r["slug"] for r in results(client.get("/api/v1/tenants/"))] == ["acme"]
    assert client.get("/api/v1/hosts/").status_code == 404


def test_revoked_token_is_401(api_as, owner):
    client, token = api_as(owner)
    token.revoked_at = timezone.now()
    token.save()
    assert client.get("/api/v1/tenants/").status_code == 401


def test_expired_token_is_401(api_as, owner):
    client, token = api_as(owner, expires_days=1)
    assert client.get("/api/v1/tenants/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/tenants/").status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer nope", "Bearer berth_wrong", "Bearer a b"])
def test_bad_authorization_is_401(client, header):
    response = client.get("/api/v1/tenants/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_deactivated_user_token_is_401_at_once(api_as, tenant_a, owner):
    client, _ = api_as(owner)
    assert client.get("/api/v1/tenants/").status_code == 200
    owner.is_active = False
    owner.save()
    assert client.get("/api/v1/tenants/").status_code == 401


def test_removed_member_tokens_stop_working_at_once(api_as, tenant_a, owner, member):
    side = tenant_services.create_tenant(actor=member, slug="side")
    bound, bound_token = api_as(member, tenant=tenant_a)
    unbound, _ = api_as(member)
    assert {r["slug"] for r in results(unbound.get("/api/v1/tenants/"))} == {"acme", "side"}
    own = Membership.objects.get(tenant=tenant_a, user=member)
    tenant_services.remove_member(actor=owner, membership=own)
    assert bound.get("/api/v1/tenants/").status_code == 401
    bound_token.refresh_from_db()
    assert bound_token.status == "revoked"
    assert [r["slug"] for r in results(unbound.get("/api/v1/tenants/"))] == [side.slug]
    assert unbound.get("/api/v1/tenants/acme/").status_code == 404


def test_last_used_at_is_recorded(api_as, owner):
    client, token = api_as(owner)
    assert token.last_used_at is None
    before = timezone.now()
    client.get("/api/v1/tenants/")
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before
    listed = client.get(f"/api/v1/tokens/{token.pk}/").json()
    assert listed["last_used_at"] is not None
