"""With sign-up closed, a pending invitation opens it, for the invited address only.

The invitation link, opened while signed out, leads to the login page and remembers the
invitation in the session; sign-up then opens for that address. The e-mail address is
still verified as the operator's policy says (the link is also shown to the inviting
admin, so holding it does not prove the mailbox). Then the invitee accepts as usual.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from apps.core.roles import Role
from apps.tenants import services
from apps.tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

User = get_user_model()
INVITED = "ines@example.test"


@pytest.fixture(autouse=True)
def _closed_signup(settings):
    settings.BERTH_ALLOW_SIGNUP = False
    cache.clear()  # allauth's rate limits live in the cache
    yield
    cache.clear()


@pytest.fixture
def invitation(tenant_a, owner):
    """(invitation, its link's path) for ines@example.test as a member of acme."""
    found, raw = services.invite(actor=owner, tenant=tenant_a, email=INVITED, role=Role.MEMBER)
    return found, reverse("invitations:accept", args=[raw])


def sign_up(client, email: str = INVITED, username: str = "ines", next_url: str = ""):
    url = reverse("account_signup") + (f"?next={next_url}" if next_url else "")
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(url, data)


def is_closed(response) -> bool:
    return "account/signup_closed.html" in [t.name for t in response.templates]


def test_without_an_invitation_signup_stays_closed(client, invitation):
    assert is_closed(client.get(reverse("account_signup")))
    sign_up(client)
    assert not User.objects.filter(username="ines").exists()


def test_invitation_link_opens_signup_then_verification_and_acceptance(client, invitation):
    found, link = invitation

    response = client.get(link)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("account_login")
    login_page = client.get(response["Location"]).content.decode()
    assert "Sign up with the e-mail address the invitation was sent to" in login_page
    assert not is_closed(client.get(reverse("account_signup")))

    response = sign_up(client, next_url=link)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    ines = User.objects.get(username="ines")
    assert ines.email == INVITED
    assert not EmailAddress.objects.get(user=ines).verified  # the operator's policy holds
    confirm = re.search(r"https?://testserver(/accounts/confirm-email/\S+)", mail.outbox[-1].body)
    assert client.post(confirm.group(1)).status_code == 302
    assert EmailAddress.objects.get(user=ines).verified

    response = client.post(reverse("account_login"), {"login": "ines", "password": PASSWORD})
    assert client.session[SESSION_KEY] == str(ines.pk)
    page = client.get(link)
    assert page.status_code == 200
    assert page.context["invitation"] == found
    response = client.post(link)

    assert response.status_code == 302
    assert Membership.objects.get(tenant=found.tenant, user=ines).role == Role.MEMBER
    found.refresh_from_db()
    assert found.status == "accepted"
    client.logout()
    assert is_closed(client.get(reverse("account_signup")))


def test_with_optional_verification_signup_leads_straight_to_the_invitation(
    client, invitation, settings
):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    found, link = invitation
    client.get(link)

    response = sign_up(client, next_url=link)

    assert response.status_code == 302
    assert response["Location"] == link
    assert client.post(link).status_code == 302
    assert Membership.objects.filter(tenant=found.tenant, user__username="ines").exists()


def test_signup_by_invitation_takes_only_the_invited_address(client, invitation):
    client.get(invitation[1])

    response = sign_up(client, email="someone-else@example.test")

    assert response.status_code == 200
    assert "invitation was sent to" in " ".join(response.context["form"].errors["email"])
    assert not User.objects.filter(username="ines").exists()
    assert not mail.outbox[1:]  # only the invitation itself was mailed


def test_invited_address_matches_case_insensitively(client, invitation):
    client.get(invitation[1])

    sign_up(client, email="Ines@Example.TEST")

    assert User.objects.get(username="ines").email.lower() == INVITED


@pytest.mark.parametrize("state", ["expired", "revoked", "accepted"])
def test_spent_invitations_do_not_open_signup(client, invitation, owner, make_user, state):
    found, link = invitation
    if state == "expired":
        found.expires_at = timezone.now() - timedelta(minutes=1)
        found.save()
    elif state == "revoked":
        services.revoke_invitation(actor=owner, invitation=found)
    else:
        services.accept_invitation(
            user=make_user("early", email=INVITED), raw_token=link.split("/")[-2]
        )

    response = client.get(link)

    assert response.status_code == 302  # to the login page, as before
    assert is_closed(client.get(reverse("account_signup")))
    sign_up(client, username="ines")
    assert not User.objects.filter(username="ines").exists()


def test_revoking_after_the_link_was_opened_closes_signup_again(client, invitation, owner):
    found, link = invitation
    client.get(link)
    assert not is_closed(client.get(reverse("account_signup")))

    services.revoke_invitation(actor=owner, invitation=found)

    assert is_closed(client.get(reverse("account_signup")))
    sign_up(client)
    assert not User.objects.filter(username="ines").exists()


def test_an_unknown_link_opens_nothing_and_forgets_an_earlier_one(client, invitation):
    client.get(invitation[1])

    client.get(reverse("invitations:accept", args=["not-a-real-token"]))

    assert is_closed(client.get(reverse("account_signup")))


def test_the_invitation_does_not_touch_password_reset(client, invitation, make_user):
    client.get(invitation[1])
    user = make_user("paula", email="paula@example.test")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)

    response = client.post(reverse("account_reset_password"), {"email": "paula@example.test"})

    assert response.status_code == 302
    assert "/password/reset/key/" in mail.outbox[-1].body


def social_login(email: str, verified: bool = True) -> SocialLogin:
    return SocialLogin(
        user=User(username="", email=email),
        account=SocialAccount(provider="github", uid="42"),
        email_addresses=[EmailAddress(email=email, verified=verified, primary=True)],
    )


def test_oauth_signup_opens_only_for_the_verified_invited_address(rf, invitation):
    request = rf.get("/")
    request.session = SessionStore()
    adapter = get_social_adapter(request)
    assert adapter.is_open_for_signup(request, social_login(INVITED)) is False

    services.remember_invitation(request.session, invitation[0])

    assert adapter.is_open_for_signup(request, social_login(INVITED)) is True
    assert adapter.is_open_for_signup(request, social_login("INES@example.test")) is True
    assert adapter.is_open_for_signup(request, social_login("other@example.test")) is False
    assert adapter.is_open_for_signup(request, social_login(INVITED, verified=False)) is False


def test_open_signup_is_unchanged(client, settings):
    settings.BERTH_ALLOW_SIGNUP = True

    sign_up(client, email="anyone@example.test", username="anyone")

    assert User.objects.filter(username="anyone", email="anyone@example.test").exists()
