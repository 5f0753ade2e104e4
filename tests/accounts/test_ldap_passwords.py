"""Directory accounts keep their password in the directory: no local one is ever set or used.

Reset, change and set are refused with a clear message, the reset page answers as for any
address (no account enumeration), and a local password saved by any path never works.
"""

from __future__ import annotations

import re

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.core import mail
from django.urls import reverse

from apps.accounts.models import DirectoryAccount
from apps.activity.models import Event
from tests.fixtures.slapd import PASSWORDS, user_dn

pytestmark = [pytest.mark.ldap, pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

User = get_user_model()
LOCAL_PASSWORD = "local-harbour-pass-51"
MANAGED = "managed by your organisation"


def ldap_login_page(client, username: str = "alice", password: str | None = None):
    return client.post(
        reverse("account_login"),
        {"login": username, "password": password or PASSWORDS[username]},
    )


def local_login(username: str, password: str = LOCAL_PASSWORD):
    """Only the local backends: what would let a local password in."""
    return authenticate(None, username=username, password=password)


def reset_request(client, email: str = "alice@berth.test"):
    return client.post(reverse("account_reset_password"), {"email": email})


def test_ldap_login_marks_the_account_as_directory_managed(ldap_on, tenant_a, client):
    ldap_login_page(client)

    alice = User.objects.get(username="alice")
    assert DirectoryAccount.objects.get(user=alice).dn == user_dn("alice")
    assert not alice.has_usable_password()
    assert Event.objects.filter(action="account.directory", actor=alice).count() == 1

    client.logout()
    ldap_login_page(client)  # a second login neither duplicates the mark nor the event
    assert DirectoryAccount.objects.filter(user=alice).count() == 1
    assert Event.objects.filter(action="account.directory", actor=alice).count() == 1


def test_password_reset_sends_no_link_and_answers_like_any_address(ldap_on, tenant_a, client):
    ldap_login_page(client)
    client.logout()
    mail.outbox.clear()

    directory = reset_request(client)
    unknown = reset_request(client, "nobody@berth.test")

    assert directory.status_code == unknown.status_code == 302
    assert directory["Location"] == unknown["Location"]
    assert not any("/password/reset/key/" in m.body for m in mail.outbox)
    to_alice = [m for m in mail.outbox if m.to == ["alice@berth.test"]]
    assert len(to_alice) == 1
    assert "LDAP directory" in to_alice[0].body
    assert "username is alice" in to_alice[0].body


def test_a_reset_link_issued_earlier_cannot_set_a_password(ldap_on, tenant_a, client):
    ldap_login_page(client)
    client.logout()
    alice = User.objects.get(username="alice")
    link = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(alice),
            "key": default_token_generator.make_token(alice),
        },
    )

    form_url = client.get(link)["Location"]  # allauth moves the key into the session
    response = client.post(form_url, {"password1": LOCAL_PASSWORD, "password2": LOCAL_PASSWORD})

    assert response.status_code == 200
    assert MANAGED in " ".join(response.context["form"].errors["password1"])
    alice.refresh_from_db()
    assert not alice.has_usable_password()
    assert local_login("alice") is None


def test_set_and_change_password_pages_refuse_with_a_message(ldap_on, tenant_a, client):
    ldap_login_page(client)

    change = client.get(reverse("account_change_password"), follow=True)
    assert change.redirect_chain[-1][0] == reverse("account_set_password")
    page = client.get(reverse("account_set_password"))
    assert page.status_code == 200
    assert MANAGED in page.content.decode()
    assert 'name="password1"' not in page.content.decode()

    response = client.post(
        reverse("account_set_password"),
        {"password1": LOCAL_PASSWORD, "password2": LOCAL_PASSWORD},
    )

    assert response.status_code == 200
    assert MANAGED in " ".join(response.context["form"].errors["password1"])
    assert not User.objects.get(username="alice").has_usable_password()


def test_profile_says_the_directory_holds_the_password(ldap_on, tenant_a, client):
    ldap_login_page(client)

    page = client.get(reverse("accounts:profile")).content.decode()

    assert "Managed by your organisation's LDAP directory" in page
    assert "Change password</a>" not in page


def test_a_password_saved_by_another_path_never_takes_effect(ldap_on, tenant_a, client):
    ldap_login_page(client)
    alice = User.objects.get(username="alice")

    alice.set_password(LOCAL_PASSWORD)  # as the admin or `changepassword` would
    alice.save()

    alice.refresh_from_db()
    assert not alice.has_usable_password()
    assert local_login("alice") is None


def test_login_form_refuses_a_local_hash_that_slipped_in(ldap_on, tenant_a, client):
    """Even a hash written behind the ORM's back (update()) does not open the login form."""
    ldap_login_page(client)
    client.logout()
    alice = User.objects.get(username="alice")
    alice.set_password(LOCAL_PASSWORD)
    User.objects.filter(pk=alice.pk).update(password=alice.password)
    assert local_login("alice") is not None  # the raw backends would accept it...

    for login in ("alice", "alice@berth.test"):
        response = ldap_login_page(client, username=login, password=LOCAL_PASSWORD)
        assert response.status_code == 200  # ...the login form does not
        assert response.context["form"].errors
        assert SESSION_KEY not in client.session

    assert ldap_login_page(client)["Location"] == reverse("portal:dashboard")


def test_reset_mail_for_a_local_account_still_carries_a_link(ldap_on, make_user, client):
    from allauth.account.models import EmailAddress

    user = make_user("lena", email="lena@example.test")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)

    reset_request(client, "lena@example.test")

    assert len(mail.outbox) == 1
    assert re.search(r"/accounts/password/reset/key/\S+", mail.outbox[0].body)
