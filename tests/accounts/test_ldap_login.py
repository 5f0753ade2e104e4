"""LDAP login against a real slapd: accounts, attributes, flags and group-to-role mapping."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.core.roles import Role
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership, Tenant
from tests.fixtures.ldap import BACKEND, ROLE_MAP, ldap_settings
from tests.fixtures.slapd import PASSWORDS, POSIX_GROUPS, group_dn, user_dn

pytestmark = [pytest.mark.ldap, pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

User = get_user_model()


def ldap_login(username: str, password: str | None = None):
    return authenticate(None, username=username, password=password or PASSWORDS[username])


def membership(username: str, slug: str = "acme") -> Membership | None:
    return Membership.objects.filter(user__username=username, tenant__slug=slug).first()


def _membership_change(group: str, action: str, uid: str = "alice") -> str:
    return f"dn: {group_dn(group)}\nchangetype: modify\n{action}: member\nmember: {user_dn(uid)}\n"


@pytest.fixture
def alice_out_of_devs(ldap_on):
    """Moves alice out of acme-devs (optionally into acme-ops); undone after the test."""
    undo: list[str] = []

    def move(*, into_ops: bool = False) -> None:
        ldap_on.modify(_membership_change("acme-devs", "delete"))
        undo.append(_membership_change("acme-devs", "add"))
        if into_ops:
            ldap_on.modify(_membership_change("acme-ops", "add"))
            undo.append(_membership_change("acme-ops", "delete"))

    yield move
    for change in undo:
        ldap_on.modify(change)


def test_alice_logs_in_through_the_login_page_and_becomes_member(ldap_on, tenant_a, client):
    response = client.post(reverse("account_login"), {"login": "alice", "password": "alice-pw-1"})

    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")  # no e-mail round-trip
    alice = User.objects.get(username="alice")
    assert client.session[SESSION_KEY] == str(alice.pk)
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@berth.test",
        "Alice",
        "Liddell",
    )
    assert not alice.has_usable_password()
    found = membership("alice")
    assert (found.role, found.source) == (Role.MEMBER, "ldap")


def test_roles_come_from_groups_and_flags_from_the_staff_group(ldap_on, tenant_a):
    bob = ldap_login("bob")
    alice = ldap_login("alice")

    assert membership("bob").role == Role.ADMIN
    assert membership("alice").role == Role.MEMBER
    assert bob.is_staff and not bob.is_superuser
    assert not alice.is_staff


def test_highest_role_wins_when_several_groups_map_to_one_tenant(slapd, tenant_a):
    role_map = {group_dn("acme-ops"): "acme:viewer", group_dn("platform-staff"): "acme:owner"}
    with ldap_settings(slapd, BERTH_LDAP_ROLE_MAP=json.dumps(role_map)):
        ldap_login("bob")

    assert membership("bob").role == Role.OWNER


def test_carol_without_groups_or_mail_logs_in_without_membership(ldap_on, tenant_a, client):
    response = client.post(reverse("account_login"), {"login": "carol", "password": "carol-pw-3"})

    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")
    carol = User.objects.get(username="carol")
    assert client.session[SESSION_KEY] == str(carol.pk)
    assert carol.email == ""
    assert not Membership.objects.filter(user=carol).exists()


def test_posix_groups_map_too(slapd, tenant_a):
    with ldap_settings(
        slapd,
        BERTH_LDAP_GROUP_SEARCH_BASE=POSIX_GROUPS,
        BERTH_LDAP_GROUP_TYPE="posixGroup",
        BERTH_LDAP_STAFF_GROUP="",
    ):
        carol = ldap_login("carol")

    assert carol is not None
    assert membership("carol").role == Role.VIEWER


def test_wrong_password_and_unknown_user_are_refused(ldap_on, tenant_a, client):
    assert ldap_login("alice", "not-her-password") is None
    assert ldap_login("mallory", "whatever") is None

    response = client.post(reverse("account_login"), {"login": "alice", "password": "nope"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert SESSION_KEY not in client.session
    assert not User.objects.filter(username__in=["alice", "mallory"]).exists()
    assert not Membership.objects.filter(tenant=tenant_a, user__username="alice").exists()


def test_leaving_the_group_removes_the_membership_and_its_tokens(
    ldap_on, tenant_a, alice_out_of_devs
):
    alice = ldap_login("alice")
    _, raw = token_services.create_token(actor=alice, name="ci", tenant=tenant_a)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/tokens/").status_code == 200

    alice_out_of_devs()
    assert ldap_login("alice") is not None

    assert membership("alice") is None
    assert api.get("/api/v1/tokens/").status_code == 401


def test_moving_to_another_group_changes_the_role(ldap_on, tenant_a, alice_out_of_devs):
    ldap_login("alice")
    alice_out_of_devs(into_ops=True)

    ldap_login("alice")

    assert membership("alice").role == Role.ADMIN


def test_tenants_missing_from_the_map_target_are_skipped(ldap_on, tenant_a, caplog):
    with caplog.at_level(logging.WARNING, logger="apps.accounts.ldap"):
        alice = ldap_login("alice")

    assert alice is not None
    assert not Tenant.objects.filter(slug="ghost").exists()
    assert "'ghost'" in caplog.text
    assert membership("alice").role == Role.MEMBER


def test_local_memberships_are_left_to_berth(ldap_on, tenant_a, tenant_b, outsider):
    alice = ldap_login("alice")
    Membership.objects.filter(user=alice).delete()
    Membership.objects.create(tenant=tenant_a, user=alice, role=Role.VIEWER)
    Membership.objects.create(tenant=tenant_b, user=alice, role=Role.MEMBER)

    ldap_login("alice")

    assert (membership("alice").role, membership("alice").source) == (Role.VIEWER, "local")
    assert membership("alice", "globex").role == Role.MEMBER


def test_removing_the_map_entry_removes_ldap_memberships(slapd, tenant_a):
    with ldap_settings(slapd):
        ldap_login("alice")
    assert membership("alice") is not None

    remaining = {dn: t for dn, t in ROLE_MAP.items() if dn != group_dn("acme-devs")}
    with ldap_settings(slapd, BERTH_LDAP_ROLE_MAP=json.dumps(remaining)):
        ldap_login("alice")

    assert membership("alice") is None


def test_deactivated_ldap_user_loses_session_and_cannot_log_in(ldap_on, tenant_a, client):
    client.post(reverse("account_login"), {"login": "alice", "password": "alice-pw-1"})
    assert client.session["_auth_user_backend"] == BACKEND
    assert client.get(reverse("account_email")).status_code == 200

    User.objects.filter(username="alice").update(is_active=False)

    response = client.get(reverse("account_email"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert ldap_login("alice") is None


def test_removed_member_session_loses_the_tenant(ldap_on, tenant_a, owner, client):
    client.post(reverse("account_login"), {"login": "alice", "password": "alice-pw-1"})
    assert client.get(reverse("account_email")).wsgi_request.tenant == tenant_a

    tenant_services.remove_member(actor=owner, membership=membership("alice"))

    assert client.get(reverse("account_email")).wsgi_request.tenant is None
