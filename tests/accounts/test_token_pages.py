"""API token pages: the raw key is shown once; scopes never exceed the user's role."""

import pytest
from django.urls import reverse

from apps.accounts import services as token_services
from apps.accounts.models import ApiToken, find_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_token_creation_shows_the_key_once(tenant_a, owner, client_for):
    client = client_for(owner)
    response = client.post(
        reverse("accounts:tokens"),
        {"name": "ci", "tenant": tenant_a.pk, "read_only": "on", "expires_days": "30"},
    )
    assert response.status_code == 201
    raw = response.context["raw_key"]
    assert raw.startswith("berth_")
    assert raw in response.content.decode()
    token = find_token(raw)
    assert (token.name, token.tenant, token.read_only) == ("ci", tenant_a, True)
    assert token.expires_at is not None

    listing = client.get(reverse("accounts:tokens")).content.decode()
    assert "ci" in listing
    assert raw not in listing
    assert token.prefix in listing


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "expires_days": "0"}, "expires_days"),
        ({"name": "x", "expires_days": "abc"}, "expires_days"),
        ({"name": "x", "tenant": "999999"}, "tenant"),
    ],
)
def test_token_form_errors(owner, client_for, data, field):
    response = client_for(owner).post(reverse("accounts:tokens"), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_token_cannot_be_bound_to_a_foreign_tenant(tenant_a, tenant_b, owner, client_for):
    response = client_for(owner).post(
        reverse("accounts:tokens"), {"name": "x", "tenant": tenant_b.pk}
    )
    assert "tenant" in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_viewer_gets_read_only_tokens_only(tenant_a, viewer, client_for):
    client = client_for(viewer)
    refused = client.post(reverse("accounts:tokens"), {"name": "w", "tenant": tenant_a.pk})
    assert refused.status_code == 200
    assert "read-only" in " ".join(refused.context["form"].errors["read_only"])
    ok = client.post(
        reverse("accounts:tokens"), {"name": "r", "tenant": tenant_a.pk, "read_only": "on"}
    )
    assert ok.status_code == 201


def test_revoke_token(owner, client_for):
    token, raw = token_services.create_token(actor=owner, name="old")
    client = client_for(owner)
    assert client.get(reverse("accounts:token_revoke", args=[token.pk])).status_code == 200
    response = client.post(reverse("accounts:token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert find_token(raw) is None
    assert "revoked" in client.get(reverse("accounts:tokens")).content.decode()


def test_someone_elses_token_is_404(owner, outsider, client_for):
    token, raw = token_services.create_token(actor=owner, name="mine")
    client = client_for(outsider)
    assert client.get(reverse("accounts:token_revoke", args=[token.pk])).status_code == 404
    assert client.post(reverse("accounts:token_revoke", args=[token.pk])).status_code == 404
    assert find_token(raw) is not None
    assert "mine" not in client.get(reverse("accounts:tokens")).content.decode()


def test_profile_lists_memberships_and_account_links(tenant_a, owner, client_for):
    body = client_for(owner).get(reverse("accounts:profile")).content.decode()
    assert "Acme Rockets" in body
    assert reverse("account_change_password") in body
    assert reverse("socialaccount_connections") in body


def test_resending_the_token_form_creates_no_second_token(owner, client_for):
    """A reload of the page that showed the key re-sends the form: nothing new is made."""
    client = client_for(owner)
    form_page = client.get(reverse("accounts:tokens"))
    data = {"name": "ci", "submission": form_page.context["submission_id"]}
    assert client.post(reverse("accounts:tokens"), data).status_code == 201
    again = client.post(reverse("accounts:tokens"), data, follow=True)
    assert again.redirect_chain[-1][0] == reverse("accounts:tokens")
    assert "already created" in again.content.decode()
    assert ApiToken.objects.filter(user=owner, name="ci").count() == 1
