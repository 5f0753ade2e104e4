"""What a token may do: a tenant-bound token of a platform admin is held to the tenant's
rules, and a token never mints a token stronger or longer-lived than itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.accounts.models import ApiToken, find_token
from apps.core.roles import Role
from apps.deployments.models import Stack
from apps.registry.models import TenantRegistryQuota
from apps.tenants.models import Environment, Membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

PRIVILEGED = "services: {web: {image: berth-demo/web:1.0, privileged: true}}"


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def mint(client: APIClient, **body):
    return client.post("/api/v1/tokens/", {"name": "child", **body}, format="json")


@pytest.fixture
def parent_api_as():
    """api_as(user, **token_args) -> (APIClient with a fresh token, the token)."""

    def make(user, **token_args):
        token, raw = token_services.create_token(actor=user, name="parent", **token_args)
        return bearer(raw), token

    return make


@pytest.fixture
def admin_in_acme(superuser, tenant_a, tenant_b):
    """The platform admin is a plain member of acme, and no member of globex."""
    Membership.objects.create(tenant=tenant_a, user=superuser, role=Role.MEMBER)
    return superuser


@pytest.fixture
def bound_admin(admin_in_acme, tenant_a):
    _, raw = token_services.create_token(actor=admin_in_acme, name="acme-ci", tenant=tenant_a)
    return bearer(raw)


# --- a platform admin's tenant-bound token -----------------------------------------------


def test_bound_admin_token_sees_only_its_tenant(bound_admin, tenant_b):
    slugs = [t["slug"] for t in bound_admin.get("/api/v1/tenants/").json()["results"]]
    assert slugs == ["acme"]
    assert bound_admin.get(f"/api/v1/tenants/{tenant_b.slug}/").status_code == 404


def test_bound_admin_token_gets_no_policy_exceptions(bound_admin, admin_in_acme, tenant_a):
    env = Environment.objects.get(tenant=tenant_a, slug="dev")
    body = {"name": "shop", "environment": env.pk, "compose": PRIVILEGED}

    response = bound_admin.post("/api/v1/stacks/", body, format="json")

    assert response.status_code == 400, response.content
    assert "privileged" in str(response.json()["compose"])
    assert not Stack.objects.exists()
    # The same admin without the tenant binding passes every rule once confirmed.
    _, raw = token_services.create_token(actor=admin_in_acme, name="platform")
    unconfirmed = bearer(raw).post("/api/v1/stacks/", body, format="json")
    assert "privileged mode (service web)" in str(unconfirmed.json()["confirm_exceptions"])
    confirmed = {**body, "confirm_exceptions": True}
    assert bearer(raw).post("/api/v1/stacks/", confirmed, format="json").status_code == 201


def test_bound_admin_token_cannot_use_admin_only_endpoints(bound_admin, tenant_a):
    response = bound_admin.patch(
        f"/api/v1/registry/usage/{tenant_a.slug}/", {"quota_bytes": 1}, format="json"
    )
    assert response.status_code == 403, response.content
    assert not TenantRegistryQuota.objects.filter(tenant=tenant_a, quota_bytes=1).exists()
    assert bound_admin.get("/api/v1/hosts/").status_code in (403, 404)


def test_bound_admin_token_acts_with_the_users_role(bound_admin, tenant_a):
    """A member may not add environments (admin role); the platform flag does not help."""
    response = bound_admin.post(
        "/api/v1/environments/", {"tenant": "acme", "slug": "qa", "name": "QA"}, format="json"
    )
    assert response.status_code in (400, 403), response.content
    assert not Environment.objects.filter(tenant=tenant_a, slug="qa").exists()


def test_saving_the_acting_user_keeps_the_account_an_admin(admin_in_acme, tenant_a):
    _, raw = token_services.create_token(actor=admin_in_acme, name="ci", tenant=tenant_a)
    acting = find_token(raw).user
    assert not acting.is_superuser and not acting.is_staff

    acting.first_name = "Root"
    acting.save()
    acting.refresh_from_db()

    assert not acting.is_superuser  # still acting for the token
    stored = get_user_model().objects.get(pk=admin_in_acme.pk)
    assert stored.first_name == "Root" and stored.is_superuser and stored.is_staff


def test_admin_cannot_bind_a_token_to_a_tenant_without_a_role_there(admin_in_acme, tenant_b):
    with pytest.raises(PermissionDenied, match="not a member"):
        token_services.create_token(actor=admin_in_acme, name="t", tenant=tenant_b)


def test_admin_who_views_a_tenant_gets_only_read_only_tokens_for_it(superuser, tenant_a):
    Membership.objects.create(tenant=tenant_a, user=superuser, role=Role.VIEWER)
    with pytest.raises(ValidationError) as error:
        token_services.create_token(actor=superuser, name="t", tenant=tenant_a)
    assert "read_only" in error.value.message_dict


# --- a token minting a token --------------------------------------------------------------


def test_child_without_expiry_expires_with_its_parent(parent_api_as, owner, tenant_a):
    client, parent = parent_api_as(owner, expires_days=3)
    response = mint(client)
    assert response.status_code == 201, response.content
    child = ApiToken.objects.get(pk=response.json()["id"])
    assert child.expires_at == parent.expires_at
    assert child.parent_id == parent.pk


def test_child_cannot_outlive_its_parent(parent_api_as, owner):
    client, _ = parent_api_as(owner, expires_days=3)
    response = mint(client, expires_days=30)
    assert response.status_code == 400
    assert "outlives" in str(response.json()["expires_days"])
    assert mint(client, expires_days=2).status_code == 201


def test_child_stops_working_when_the_parent_is_revoked(parent_api_as, owner):
    client, parent = parent_api_as(owner)
    child_raw = mint(client).json()["token"]
    grandchild_raw = mint(bearer(child_raw)).json()["token"]
    assert find_token(grandchild_raw) is not None

    token_services.revoke_token(actor=owner, token=parent)

    assert find_token(child_raw) is None and find_token(grandchild_raw) is None
    assert bearer(child_raw).get("/api/v1/tenants/").status_code == 401
    assert set(ApiToken.objects.filter(user=owner).values_list("revoked_at", flat=True)) != {None}
    assert not ApiToken.objects.filter(user=owner, revoked_at__isnull=True).exists()


def test_child_stops_working_when_the_parent_expires(parent_api_as, owner):
    client, parent = parent_api_as(owner)
    child_raw = mint(client).json()["token"]
    ApiToken.objects.filter(pk=parent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert find_token(child_raw) is None


def test_bound_token_mints_neither_unbound_nor_foreign_tokens(owner, tenant_a, tenant_b):
    Membership.objects.create(tenant=tenant_b, user=owner, role=Role.MEMBER)
    parent, _ = token_services.create_token(actor=owner, name="acme", tenant=tenant_a)
    for tenant in (None, tenant_b):
        with pytest.raises(ValidationError) as error:
            token_services.create_token(actor=owner, name="c", tenant=tenant, parent=parent)
        assert "tenant" in error.value.message_dict


def test_read_only_token_mints_no_writable_token(owner):
    parent, _ = token_services.create_token(actor=owner, name="ro", read_only=True)
    with pytest.raises(ValidationError) as error:
        token_services.create_token(actor=owner, name="c", parent=parent)
    assert "read_only" in error.value.message_dict
    child, _ = token_services.create_token(actor=owner, name="c", read_only=True, parent=parent)
    assert child.read_only


def test_bound_token_sees_and_revokes_only_tokens_of_its_tenant(owner, tenant_a):
    unbound, _ = token_services.create_token(actor=owner, name="all")
    _, raw = token_services.create_token(actor=owner, name="acme", tenant=tenant_a)
    client = bearer(raw)

    listed = [t["name"] for t in client.get("/api/v1/tokens/").json()["results"]]

    assert listed == ["acme"]
    assert client.delete(f"/api/v1/tokens/{unbound.pk}/").status_code == 404
    unbound.refresh_from_db()
    assert unbound.revoked_at is None
