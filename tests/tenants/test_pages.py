"""Tenant, member and environment pages: thin over the services, scoped by visible_to."""

import pytest
from django.urls import reverse

from apps.core.roles import Role
from apps.tenants.models import Environment, Membership, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_tenant_list_shows_only_my_tenants(tenant_a, tenant_b, owner, client_for):
    body = client_for(owner).get(reverse("tenants:list")).content.decode()
    assert "Acme Rockets" in body
    assert "Globex" not in body


def test_create_tenant_makes_me_owner_with_default_environments(outsider, client_for):
    response = client_for(outsider).post(
        reverse("tenants:create"), {"slug": "initech", "name": "Initech"}
    )
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    assert response["Location"] == reverse("tenants:detail", args=["initech"])
    assert Membership.objects.get(tenant=tenant, user=outsider).role == Role.OWNER
    assert sorted(tenant.environments.values_list("slug", flat=True)) == ["dev", "prod", "staging"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"slug": "Bad Slug!"}, "slug", "lowercase letters"),
        ({"slug": "acme"}, "slug", "already exists"),
        ({"slug": ""}, "slug", "required"),
        ({"slug": "ok-slug", "name": "x" * 101}, "name", "at most 100"),
    ],
)
def test_create_tenant_shows_field_errors(tenant_a, owner, client_for, data, field, message):
    response = client_for(owner).post(reverse("tenants:create"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert "field-error" in response.content.decode()


def test_foreign_tenant_pages_are_404(tenant_a, tenant_b, owner, client_for):
    client = client_for(owner)
    env = tenant_b.environments.first()
    membership = Membership.objects.get(tenant=tenant_b)
    for url in [
        reverse("tenants:detail", args=["globex"]),
        reverse("tenants:edit", args=["globex"]),
        reverse("tenants:delete", args=["globex"]),
        reverse("tenants:invite", args=["globex"]),
        reverse("tenants:environment_create", args=["globex"]),
        reverse("tenants:environment", args=[env.pk]),
        reverse("tenants:environment_edit", args=[env.pk]),
        reverse("tenants:environment_delete", args=[env.pk]),
        reverse("tenants:member_role", args=[membership.pk]),
        reverse("tenants:member_remove", args=[membership.pk]),
    ]:
        get, post = client.get(url), client.post(url, {"name": "pwned", "role": "owner"})
        assert (get.status_code, post.status_code) == (404, 404), url
        assert "Globex" not in get.content.decode()
    assert Tenant.objects.get(slug="globex").name == "Globex Corp"


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_cannot_manage_the_tenant(tenant_a, who, request, client_for):
    client = client_for(request.getfixturevalue(who))
    env = tenant_a.environments.first()
    for url in [
        reverse("tenants:edit", args=["acme"]),
        reverse("tenants:delete", args=["acme"]),
        reverse("tenants:invite", args=["acme"]),
        reverse("tenants:environment_create", args=["acme"]),
        reverse("tenants:environment_edit", args=[env.pk]),
        reverse("tenants:environment_delete", args=[env.pk]),
    ]:
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"name": "x", "slug": "x", "email": "a@b.c"}).status_code == 403
    assert Tenant.objects.get(slug="acme").name == "Acme Rockets"
    assert tenant_a.environments.count() == 3


def test_viewer_sees_the_tenant_without_admin_controls(tenant_a, viewer, client_for):
    response = client_for(viewer).get(reverse("tenants:detail", args=["acme"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "olivia" in body
    assert reverse("tenants:edit", args=["acme"]) not in body
    assert "Pending invitations" not in body


def test_admin_cannot_delete_tenant_but_owner_can(tenant_a, owner, member, client_for):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    assert client_for(member).post(reverse("tenants:delete", args=["acme"])).status_code == 403
    response = client_for(owner).post(reverse("tenants:delete", args=["acme"]))
    assert response.status_code == 302
    assert not Tenant.objects.filter(slug="acme").exists()


def test_edit_tenant(tenant_a, owner, client_for):
    client = client_for(owner)
    response = client.post(reverse("tenants:edit", args=["acme"]), {"name": ""})
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    client.post(reverse("tenants:edit", args=["acme"]), {"name": "Acme 2", "description": "d"})
    assert Tenant.objects.get(slug="acme").name == "Acme 2"


def test_change_role_with_htmx_swaps_the_row(tenant_a, owner, member, client_for):
    membership = Membership.objects.get(tenant=tenant_a, user=member)
    response = client_for(owner).post(
        reverse("tenants:member_role", args=[membership.pk]),
        {"role": "admin"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response.content.decode().strip().startswith(f'<tr id="member-{membership.pk}">')
    assert "HX-Request" in response["Vary"]
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_change_role_without_htmx_redirects(tenant_a, owner, member, client_for):
    membership = Membership.objects.get(tenant=tenant_a, user=member)
    response = client_for(owner).post(
        reverse("tenants:member_role", args=[membership.pk]), {"role": "viewer"}
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_admin_cannot_grant_owner(tenant_a, owner, member, viewer, client_for):
    Membership.objects.filter(user=member).update(role=Role.ADMIN)
    target = Membership.objects.get(tenant=tenant_a, user=viewer)
    response = client_for(member).post(
        reverse("tenants:member_role", args=[target.pk]), {"role": "owner"}
    )
    assert response.status_code == 200
    assert "role" in response.context["form"].errors
    target.refresh_from_db()
    assert target.role == Role.VIEWER


def test_last_owner_cannot_be_demoted(tenant_a, owner, client_for):
    membership = Membership.objects.get(tenant=tenant_a, user=owner)
    response = client_for(owner).post(
        reverse("tenants:member_role", args=[membership.pk]), {"role": "member"}
    )
    assert response.status_code == 200
    assert "at least one owner" in " ".join(response.context["form"].errors["role"])


def test_remove_member_and_leave(tenant_a, owner, member, viewer, client_for):
    target = Membership.objects.get(tenant=tenant_a, user=viewer)
    response = client_for(owner).post(reverse("tenants:member_remove", args=[target.pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=target.pk).exists()
    mine = Membership.objects.get(tenant=tenant_a, user=member)
    response = client_for(member).post(reverse("tenants:member_remove", args=[mine.pk]))
    assert response["Location"] == reverse("tenants:list")
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_member_cannot_remove_others(tenant_a, owner, member, client_for):
    target = Membership.objects.get(tenant=tenant_a, user=owner)
    response = client_for(member).post(reverse("tenants:member_remove", args=[target.pk]))
    assert response.status_code == 403
    assert Membership.objects.filter(pk=target.pk).exists()


def test_sole_owner_cannot_leave(tenant_a, owner, client_for):
    mine = Membership.objects.get(tenant=tenant_a, user=owner)
    response = client_for(owner).post(reverse("tenants:member_remove", args=[mine.pk]))
    assert response.status_code == 200
    assert "at least one owner" in response.content.decode()


def test_environment_lifecycle(tenant_a, owner, client_for):
    client = client_for(owner)
    response = client.post(
        reverse("tenants:environment_create", args=["acme"]), {"slug": "qa", "name": "QA"}
    )
    env = Environment.objects.get(tenant=tenant_a, slug="qa")
    assert response["Location"] == reverse("tenants:environment", args=[env.pk])
    assert client.get(response["Location"]).status_code == 200
    client.post(reverse("tenants:environment_edit", args=[env.pk]), {"name": "Quality"})
    env.refresh_from_db()
    assert env.name == "Quality"
    client.post(reverse("tenants:environment_delete", args=[env.pk]))
    assert not Environment.objects.filter(pk=env.pk).exists()


def test_environment_form_errors(tenant_a, owner, client_for):
    client = client_for(owner)
    url = reverse("tenants:environment_create", args=["acme"])
    duplicate = client.post(url, {"slug": "dev"})
    assert "already has an environment" in " ".join(duplicate.context["form"].errors["slug"])
    bad = client.post(url, {"slug": "-bad-"})
    assert "slug" in bad.context["form"].errors


def test_last_environment_cannot_be_deleted(tenant_a, owner, client_for):
    client = client_for(owner)
    envs = list(tenant_a.environments.all())
    for env in envs[:-1]:
        client.post(reverse("tenants:environment_delete", args=[env.pk]))
    response = client.post(reverse("tenants:environment_delete", args=[envs[-1].pk]))
    assert response.status_code == 200
    assert "at least one environment" in response.content.decode()
    assert tenant_a.environments.count() == 1
