"""Invitations end to end through the pages: create, mail, accept once, for one address."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.core.roles import Role
from apps.tenants.models import Invitation, Membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def invite(client, email="newcomer@example.test", role="member") -> str:
    """Create an invitation through the page; returns the link shown once."""
    response = client.post(reverse("tenants:invite", args=["acme"]), {"email": email, "role": role})
    assert response.status_code == 200, response.content
    match = re.search(r'value="(http://testserver/invitations/[^"]+/)"', response.content.decode())
    assert match, "the page shows the link"
    return match.group(1)


def test_invitation_flow_end_to_end(tenant_a, owner, make_user, client_for):
    link = invite(client_for(owner))
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["newcomer@example.test"]
    assert link in mail.outbox[0].body

    newcomer = make_user("nina", email="newcomer@example.test")
    client = client_for(newcomer)
    page = client.get(link)
    assert page.status_code == 200
    assert "Acme Rockets" in page.content.decode()
    assert "Accept and join" in page.content.decode()

    response = client.post(link)
    assert response.status_code == 302
    assert response["Location"] == reverse("tenants:detail", args=["acme"])
    assert Membership.objects.get(tenant=tenant_a, user=newcomer).role == Role.MEMBER

    # The link works once.
    again = client.post(link)
    assert again.status_code == 400
    assert "accepted" in again.content.decode()


def test_the_link_is_shown_once(tenant_a, owner, client_for):
    client = client_for(owner)
    link = invite(client)
    token = link.rstrip("/").rsplit("/", 1)[1]
    detail = client.get(reverse("tenants:detail", args=["acme"])).content.decode()
    assert "newcomer@example.test" in detail
    assert token not in detail


def test_other_address_is_refused_without_showing_the_tenant(tenant_a, owner, outsider, client_for):
    link = invite(client_for(owner))
    client = client_for(outsider)
    page = client.get(link)
    assert page.status_code == 200
    body = page.content.decode()
    assert "another e-mail address" in body
    assert "Acme" not in body
    response = client.post(link)
    assert response.status_code == 400
    assert "another e-mail address" in response.content.decode()
    assert not Membership.objects.filter(tenant=tenant_a, user=outsider).exists()


def test_expired_invitation_is_refused(tenant_a, owner, make_user, client_for):
    link = invite(client_for(owner))
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client = client_for(make_user("nina", email="newcomer@example.test"))
    assert "expired" in client.get(link).content.decode()
    response = client.post(link)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert Membership.objects.filter(tenant=tenant_a).count() == 3


def test_revoked_invitation_is_refused(tenant_a, owner, make_user, client_for):
    link = invite(client_for(owner))
    invitation = Invitation.objects.get()
    response = client_for(owner).post(reverse("tenants:invitation_revoke", args=[invitation.pk]))
    assert response.status_code == 302
    client = client_for(make_user("nina", email="newcomer@example.test"))
    assert client.post(link).status_code == 400
    assert "revoked" in client.get(link).content.decode()


def test_unknown_link_is_404_not_500(owner, client_for):
    client = client_for(owner)
    for token in ["nope", "x" * 300, "%00"]:
        response = client.get(f"/invitations/{token}/")
        assert response.status_code == 404
        assert client.post(f"/invitations/{token}/").status_code == 404


def test_accept_page_needs_login(tenant_a, owner, client_for, client):
    link = invite(client_for(owner))
    response = client.get(link)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_invite_form_errors(tenant_a, owner, client_for):
    client = client_for(owner)
    url = reverse("tenants:invite", args=["acme"])
    bad = client.post(url, {"email": "not-an-address", "role": "member"})
    assert bad.status_code == 200
    assert "email" in bad.context["form"].errors
    existing = client.post(url, {"email": "marcus@example.test", "role": "member"})
    assert "already a member" in " ".join(existing.context["form"].errors["email"])
    assert len(mail.outbox) == 0


def test_admin_cannot_invite_an_owner(tenant_a, member, client_for):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    response = client_for(member).post(
        reverse("tenants:invite", args=["acme"]), {"email": "x@example.test", "role": "owner"}
    )
    assert response.status_code == 200
    assert "role" in response.context["form"].errors
    assert not Invitation.objects.exists()


def test_resending_the_invitation_form_sends_no_second_invitation(tenant_a, owner, client_for):
    client = client_for(owner)
    url = reverse("tenants:invite", args=["acme"])
    data = {
        "email": "twice@example.test",
        "role": "member",
        "submission": client.get(url).context["submission_id"],
    }
    assert client.post(url, data).status_code == 200
    again = client.post(url, data, follow=True)
    assert again.redirect_chain[-1][0] == reverse("tenants:detail", args=["acme"])
    assert "already sent" in again.content.decode()
    assert Invitation.objects.filter(email="twice@example.test").count() == 1
    assert len(mail.outbox) == 1
