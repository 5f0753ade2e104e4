"""Every page renders for the person it is meant for, inside the shared layout."""

import pytest
from django.urls import reverse

from apps.accounts import services as token_services
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_dashboard_shows_tenant_counts_and_getting_started(tenant_a, owner, client_for):
    response = client_for(owner).get(reverse("portal:dashboard"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Acme Rockets" in body
    assert "Getting started" in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert response.context["counts"] == {
        "tokens": 0,
        "members": 3,
        "environments": 3,
        "invitations": 0,
    }


def test_dashboard_without_tenant_invites_to_create_one(outsider, client_for):
    body = client_for(outsider).get(reverse("portal:dashboard")).content.decode()
    assert "Welcome to Berth" in body
    assert reverse("tenants:create") in body


@pytest.mark.parametrize("section", ["security"])
def test_placeholder_sections_say_what_will_come(section, owner, client_for):
    response = client_for(owner).get(reverse(f"portal:{section}"))
    assert response.status_code == 200
    assert "is on its way" in response.content.decode()


def test_navigation_hides_hosts_from_non_superusers(tenant_a, owner, superuser, client_for):
    assert reverse("hosts:list") not in client_for(owner).get("/").content.decode()
    assert reverse("hosts:list") in client_for(superuser).get("/").content.decode()


def owner_pages(tenant, env, membership, invitation, token) -> list[str]:
    return [
        reverse("tenants:list"),
        reverse("tenants:create"),
        reverse("tenants:detail", args=[tenant.slug]),
        reverse("tenants:edit", args=[tenant.slug]),
        reverse("tenants:delete", args=[tenant.slug]),
        reverse("tenants:invite", args=[tenant.slug]),
        reverse("tenants:environment_create", args=[tenant.slug]),
        reverse("tenants:environment", args=[env.pk]),
        reverse("tenants:environment_edit", args=[env.pk]),
        reverse("tenants:environment_delete", args=[env.pk]),
        reverse("tenants:member_role", args=[membership.pk]),
        reverse("tenants:member_remove", args=[membership.pk]),
        reverse("tenants:invitation_revoke", args=[invitation.pk]),
        reverse("accounts:profile"),
        reverse("accounts:tokens"),
        reverse("accounts:token_revoke", args=[token.pk]),
        reverse("activity:list"),
        reverse("account_email"),
        reverse("account_change_password"),
        reverse("socialaccount_connections"),
    ]


def test_every_tenant_and_settings_page_renders_for_the_owner(tenant_a, owner, member, client_for):
    env = tenant_a.environments.first()
    membership = Membership.objects.get(tenant=tenant_a, user=member)
    invitation, _ = tenant_services.invite(actor=owner, tenant=tenant_a, email="new@example.test")
    token, _ = token_services.create_token(actor=owner, name="ci")
    client = client_for(owner)
    for url in owner_pages(tenant_a, env, membership, invitation, token):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'class="sidebar"' in response.content, url


def test_platform_pages_render_for_a_superuser(superuser, client_for):
    host = Host.objects.create(name="engine-1", endpoint="unix:///nonexistent/docker.sock")
    client = client_for(superuser)
    for url in [
        reverse("hosts:list"),
        reverse("hosts:create"),
        reverse("hosts:detail", args=[host.pk]),
        reverse("hosts:edit", args=[host.pk]),
        reverse("hosts:delete", args=[host.pk]),
        reverse("activity:all"),
    ]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "name",
    [
        "account_login",
        "account_signup",
        "account_reset_password",
        "account_reset_password_done",
        "account_email_verification_sent",
    ],
)
def test_account_pages_use_the_entrance_layout(name, client):
    response = client.get(reverse(name))
    assert response.status_code == 200
    body = response.content.decode()
    assert "entrance-card" in body
    assert "vendor/pico/pico.min.css" in body


def test_logout_page_posts_a_form(owner, client_for):
    client = client_for(owner)
    page = client.get(reverse("account_logout"))
    assert page.status_code == 200
    assert "entrance-card" in page.content.decode()
    assert client.post(reverse("account_logout")).status_code == 302
    assert client.get("/").status_code == 302


def test_login_form_errors_are_shown_not_raised(client, owner):
    response = client.post(reverse("account_login"), {"login": "olivia", "password": "wrong"})
    assert response.status_code == 200
    assert "alert-error" in response.content.decode()


def test_signup_form_names_the_bad_field(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "not-an-email", "username": "x y", "password1": "a", "password2": "b"},
    )
    assert response.status_code == 200
    assert "field-error" in response.content.decode()


def test_messages_are_dismissible(tenant_a, owner, client_for):
    client = client_for(owner)
    response = client.post(
        reverse("tenants:edit", args=["acme"]), {"name": "Acme Inc"}, follow=True
    )
    body = response.content.decode()
    assert "Tenant updated." in body
    assert "data-dismiss" in body


def test_switching_tenant_and_environment(tenant_a, tenant_b, owner, client_for):
    other = tenant_services.create_tenant(actor=owner, slug="second", name="Second")
    prod = other.environments.get(slug="prod")
    client = client_for(owner)
    response = client.post(
        reverse("portal:switch"),
        {"tenant": other.pk, "environment": prod.pk, "next": reverse("tenants:list")},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("tenants:list")
    page = client.get("/")
    assert page.context["current_tenant"] == other
    assert page.context["current_environment"] == prod


def test_switching_by_htmx_redirects_the_page(tenant_a, owner, client_for):
    response = client_for(owner).post(
        reverse("portal:switch"), {"tenant": tenant_a.pk, "next": "/"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/"


def test_switching_to_a_foreign_tenant_is_ignored(tenant_a, tenant_b, owner, client_for):
    client = client_for(owner)
    client.post(reverse("portal:switch"), {"tenant": tenant_b.pk})
    assert client.get("/").context["current_tenant"] == tenant_a


def test_switch_refuses_offsite_next(tenant_a, owner, client_for):
    response = client_for(owner).post(
        reverse("portal:switch"), {"tenant": tenant_a.pk, "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("portal:dashboard")


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("tenants:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
