"""Nobody can claim a directory person's account before their first LDAP login.

Sign-up (local and OAuth) refuses user names and addresses the directory holds, asked of
the real slapd; a directory login never becomes a local account that happens to bear the
same name, with its tokens and social logins, unless an operator linked the two.
"""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.test import RequestFactory
from django.urls import reverse

from apps.accounts import services as token_services
from apps.accounts.adapters import SocialAccountAdapter
from apps.accounts.models import DirectoryAccount, find_token
from apps.activity.models import Event
from tests.fixtures.ldap import ldap_settings
from tests.fixtures.slapd import PASSWORDS, user_dn

pytestmark = [pytest.mark.ldap, pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

User = get_user_model()
LOCAL_PASSWORD = "local-harbour-pass-51"
SIGNUP_PASSWORD = "fresh-quay-pass-77"


def sign_up(client, username: str, email: str):
    return client.post(
        reverse("account_signup"),
        {
            "username": username,
            "email": email,
            "password1": SIGNUP_PASSWORD,
            "password2": SIGNUP_PASSWORD,
        },
    )


def ldap_login_page(client, username: str = "alice", password: str | None = None):
    return client.post(
        reverse("account_login"),
        {"login": username, "password": password or PASSWORDS[username]},
    )


@pytest.mark.parametrize("username", ["alice", "ALICE", "carol"])
def test_sign_up_refuses_a_directory_user_name(ldap_on, client, username):
    response = sign_up(client, username, "someone@example.test")

    assert response.status_code == 200
    assert "belongs to your organisation's directory" in " ".join(
        response.context["form"].errors["username"]
    )
    assert not User.objects.filter(username__iexact=username).exists()


@pytest.mark.parametrize("email", ["bob@berth.test", "Bob@Berth.TEST"])
def test_sign_up_refuses_a_directory_address(ldap_on, client, email):
    response = sign_up(client, "mallory", email)

    assert response.status_code == 200
    assert "belongs to your organisation's directory" in " ".join(
        response.context["form"].errors["email"]
    )
    assert not User.objects.filter(username="mallory").exists()


def test_sign_up_with_names_the_directory_does_not_hold_works(ldap_on, client):
    response = sign_up(client, "zed", "zed@example.test")

    assert response.status_code == 302, response.context["form"].errors
    assert User.objects.filter(username="zed").exists()


def test_sign_up_waits_when_the_directory_cannot_be_asked(slapd, client):
    with ldap_settings(slapd, BERTH_LDAP_URI="ldap://127.0.0.1:9/", BERTH_LDAP_TIMEOUT="2"):
        response = sign_up(client, "zed", "zed@example.test")

    assert response.status_code == 200
    assert "cannot be reached" in str(response.context["form"].errors)
    assert not User.objects.filter(username="zed").exists()


def test_password_reset_of_a_directory_address_is_not_refused(ldap_on, tenant_a, client):
    """The reset page looks accounts up; it must answer alike for every address."""
    response = client.post(reverse("account_reset_password"), {"email": "alice@berth.test"})
    assert response.status_code == 302


def test_oauth_auto_sign_up_with_a_directory_address_goes_to_the_form(ldap_on):
    request = RequestFactory().get("/accounts/github/login/callback/")

    def sociallogin(email: str) -> SocialLogin:
        return SocialLogin(
            account=SocialAccount(provider="github", uid="1"),
            user=User(email=email),
            email_addresses=[EmailAddress(email=email, verified=True, primary=True)],
        )

    adapter = SocialAccountAdapter(request)
    assert not adapter.is_auto_signup_allowed(request, sociallogin("alice@berth.test"))
    assert adapter.is_auto_signup_allowed(request, sociallogin("zed@example.test"))


@pytest.fixture
def local_alice():
    """A local 'alice' made before the directory had one: with a password, a token and a
    GitHub login, none of which the directory's alice may inherit."""
    user = User.objects.create_user("alice", email="alice@old.test", password=LOCAL_PASSWORD)
    _, raw = token_services.create_token(actor=user, name="ci")
    SocialAccount.objects.create(user=user, provider="github", uid="4242")
    return user, raw


def test_directory_login_never_becomes_a_local_account_of_the_same_name(
    ldap_on, tenant_a, client, local_alice
):
    user, raw = local_alice

    response = ldap_login_page(client)

    assert response.status_code == 200  # refused
    assert SESSION_KEY not in client.session
    assert authenticate(None, username="alice", password=PASSWORDS["alice"]) is None
    assert not DirectoryAccount.objects.exists()
    user.refresh_from_db()
    assert user.check_password(LOCAL_PASSWORD)  # the local account is untouched
    assert user.email == "alice@old.test"
    assert not user.memberships.exists()  # no LDAP group memberships were granted to it
    assert find_token(raw).user == user
    conflict = Event.objects.filter(action="account.directory_conflict").first()
    assert user_dn("alice") in conflict.message


def test_an_operator_link_hands_the_account_to_the_directory(
    ldap_on, tenant_a, client, local_alice
):
    user, _ = local_alice
    DirectoryAccount.objects.create(user=user, dn=user_dn("alice"))  # the admin's decision

    response = ldap_login_page(client)

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(user.pk)
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_the_account_follows_the_entry_not_the_name(ldap_on, tenant_a, client):
    """An account marked for another entry is not handed to a new entry with the name."""
    assert ldap_login_page(client).status_code == 302
    alice = User.objects.get(username="alice")
    client.logout()
    DirectoryAccount.objects.filter(user=alice).update(dn="uid=alice,ou=former,dc=berth,dc=test")

    assert ldap_login_page(client).status_code == 200
    assert SESSION_KEY not in client.session


def test_accounts_marked_before_dns_were_recorded_are_found_by_name(ldap_on, tenant_a, client):
    assert ldap_login_page(client).status_code == 302
    alice = User.objects.get(username="alice")
    client.logout()
    DirectoryAccount.objects.filter(user=alice).update(dn="")  # as migration 0002 left them

    assert ldap_login_page(client).status_code == 302
    assert client.session[SESSION_KEY] == str(alice.pk)
    assert DirectoryAccount.objects.get(user=alice).dn == user_dn("alice")


def test_upgrade_marks_accounts_the_ldap_backend_made_earlier(slapd, tenant_a, client):
    """An LDAP account from before DirectoryAccount (no usable password, no social login)
    still logs in after the upgrade; a local account with a password is never marked."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("apps.accounts.migrations.0004_mark_passwordless_directory_users")
    old = User.objects.create_user("alice", email="alice@berth.test")  # as LDAP made it
    old.set_unusable_password()
    old.save()
    local = User.objects.create_user("bob", password=LOCAL_PASSWORD)
    oauth = User.objects.create_user("carol")
    SocialAccount.objects.create(user=oauth, provider="github", uid="7")

    migration.mark_passwordless_directory_users(apps, None)  # LDAP off: nothing
    assert not DirectoryAccount.objects.exists()
    with ldap_settings(slapd):
        migration.mark_passwordless_directory_users(apps, None)
        assert list(DirectoryAccount.objects.values_list("user__username", flat=True)) == ["alice"]
        assert local.check_password(LOCAL_PASSWORD)

        assert ldap_login_page(client).status_code == 302
        assert client.session[SESSION_KEY] == str(old.pk)
        client.logout()
        assert ldap_login_page(client, "bob").status_code == 200  # local bob stays local
        assert SESSION_KEY not in client.session
