"""Deactivating a user or removing a member takes effect at the very next request."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import SESSION_KEY
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

TENANTS_API = "/api/v1/tenants/"


def bearer(raw: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def logged_in_through_the_login_page(client, user):
    """A real allauth login (not force_login), so the session is what a browser holds."""
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    response = client.post(reverse("account_login"), {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302 and client.session[SESSION_KEY] == str(user.pk)
    return client


def test_deactivated_user_loses_session_and_tokens_at_once(client, member, tenant_a):
    logged_in_through_the_login_page(client, member)
    _, personal = token_services.create_token(actor=member, name="laptop")
    _, bound = token_services.create_token(actor=member, name="ci", tenant=tenant_a)
    assert client.get(reverse("portal:dashboard")).status_code == 200
    assert client.get(TENANTS_API).status_code == 200
    assert bearer(personal).get(TENANTS_API).status_code == 200
    assert bearer(bound).get(TENANTS_API).status_code == 200

    member.is_active = False
    member.save(update_fields=["is_active"])

    response = client.get(reverse("portal:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert client.get(TENANTS_API).status_code in (401, 403)
    assert bearer(personal).get(TENANTS_API).status_code == 401
    assert bearer(bound).get(TENANTS_API).status_code == 401


def test_deactivated_user_cannot_log_in_again(client, member):
    EmailAddress.objects.create(user=member, email=member.email, primary=True, verified=True)
    member.is_active = False
    member.save(update_fields=["is_active"])

    client.post(reverse("account_login"), {"login": member.username, "password": PASSWORD})

    assert SESSION_KEY not in client.session


def test_removed_member_loses_tenant_tokens_and_the_tenant_in_the_session(
    client, owner, member, tenant_a, tenant_b
):
    logged_in_through_the_login_page(client, member)
    _, bound = token_services.create_token(actor=member, name="ci", tenant=tenant_a)
    _, personal = token_services.create_token(actor=member, name="laptop")
    assert client.get(reverse("account_email")).wsgi_request.tenant == tenant_a
    assert bearer(bound).get(f"{TENANTS_API}{tenant_a.slug}/").status_code == 200

    membership = Membership.objects.get(tenant=tenant_a, user=member)
    tenant_services.remove_member(actor=owner, membership=membership)

    assert client.get(reverse("account_email")).wsgi_request.tenant is None
    assert bearer(bound).get(TENANTS_API).status_code == 401
    # The personal token still works, but no longer shows the tenant.
    assert bearer(personal).get(f"{TENANTS_API}{tenant_a.slug}/").status_code == 404
    assert client.get(f"{TENANTS_API}{tenant_a.slug}/").status_code == 404
