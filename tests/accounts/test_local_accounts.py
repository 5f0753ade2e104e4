"""Local accounts with django-allauth: sign-up, e-mail verification, login, logout, reset."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

User = get_user_model()
NEW_PASSWORD = "tidal-basin-anchor-77"


def sign_up(client, username: str = "newton", email: str = "newton@example.test"):
    return client.post(
        reverse("account_signup"),
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def log_in(client, login: str, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": login, "password": password})


def link_in(message, pattern: str) -> str:
    found = re.search(rf"https?://testserver({pattern}\S*)", message.body)
    assert found, message.body
    return found.group(1)


def verified_user(make_user, username: str = "verity"):
    user = make_user(username)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


def test_signup_sends_a_verification_mail_then_confirmation_allows_login(client):
    response = sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert SESSION_KEY not in client.session
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["newton@example.test"]
    assert message.subject.startswith("[Berth] ")
    confirm = link_in(message, "/accounts/confirm-email/")

    assert client.get(confirm).status_code == 200
    assert client.post(confirm).status_code == 302
    assert EmailAddress.objects.get(email="newton@example.test").verified

    response = log_in(client, "newton")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")
    assert client.session[SESSION_KEY] == str(User.objects.get(username="newton").pk)


def test_login_before_verification_is_refused_and_resends_the_mail(client):
    sign_up(client)
    client.logout()
    mail.outbox.clear()
    cache.clear()  # allauth sends at most one verification mail per address every 3 minutes

    response = log_in(client, "newton")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert SESSION_KEY not in client.session
    assert len(mail.outbox) == 1
    assert client.get(reverse("portal:dashboard")).status_code == 302


def test_login_by_username_or_email(client, make_user):
    user = verified_user(make_user)

    assert log_in(client, "verity")["Location"] == reverse("portal:dashboard")
    client.logout()
    assert log_in(client, "verity@example.test")["Location"] == reverse("portal:dashboard")
    assert client.session[SESSION_KEY] == str(user.pk)


def test_wrong_password_is_refused_with_a_form_error(client, make_user):
    verified_user(make_user)

    response = log_in(client, "verity", "not-the-password")

    assert response.status_code == 200
    assert response.context["form"].errors
    assert SESSION_KEY not in client.session


def test_signup_errors_name_the_field(client, make_user):
    make_user("taken")

    response = sign_up(client, username="taken", email="not-an-email")

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "username" in errors and "email" in errors
    assert not mail.outbox


def test_logout_needs_a_post(client, make_user):
    verified_user(make_user)
    log_in(client, "verity")

    assert client.get(reverse("account_logout")).status_code == 200
    assert SESSION_KEY in client.session
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert SESSION_KEY not in client.session


def test_password_reset_by_mail(client, make_user):
    verified_user(make_user)

    response = client.post(reverse("account_reset_password"), {"email": "verity@example.test"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    reset = link_in(mail.outbox[0], "/accounts/password/reset/key/")
    form_url = client.get(reset)["Location"]  # allauth moves the key into the session
    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert log_in(client, "verity", PASSWORD).status_code == 200  # old password refused
    assert log_in(client, "verity", NEW_PASSWORD)["Location"] == reverse("portal:dashboard")


def test_password_reset_for_an_unknown_address_sends_nothing_revealing(client):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.test"})

    assert response.status_code == 302
    assert all("/password/reset/key/" not in m.body for m in mail.outbox)


@override_settings(BERTH_ALLOW_SIGNUP=False)
def test_operators_can_close_signup(client, make_user):
    page = client.get(reverse("account_signup"))
    assert "account/signup_closed.html" in [t.name for t in page.templates]

    sign_up(client)

    assert not User.objects.filter(username="newton").exists()
    assert not mail.outbox
    verified_user(make_user)
    assert log_in(client, "verity")["Location"] == reverse("portal:dashboard")
