"""Deleting an empty repository (no tag left) on the real registry: page, API, roles.

A repository with tags cannot be deleted this way (its images may still be pulled by
running stacks): the page says so and offers no button, the API answers 400.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from apps.activity.models import Event
from apps.registry import quota
from apps.registry.models import Repository
from tests.conftest import PASSWORD, login


def client_of(user) -> Client:
    return login(Client(), user)


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def push(registry, docker_cli, tiny_image, user, name: str, tags=("1.0",)) -> None:
    assert docker_cli.login(registry, user.username, PASSWORD).returncode == 0
    for tag in tags:
        ref = docker_cli.tag(tiny_image, registry.ref(name, tag))
        assert docker_cli.push(ref).returncode == 0


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_empty_repository_is_deleted_one_with_tags_is_refused(
    registry, settings, docker_cli, tiny_image, tenant_a, owner, member
):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    name = f"gone-{uuid.uuid4().hex[:6]}"
    push(registry, docker_cli, tiny_image, member, f"acme/{name}")
    repository, _ = Repository.objects.get_or_create(tenant=tenant_a, name=name)
    url = reverse("registry:repository_delete", args=[repository.pk])

    # With a tag: the page says why and offers no button; POST and the API refuse.
    page = client_of(owner).get(url).content.decode()
    assert "still has 1 tag (1.0)" in page and "Delete repository" not in page
    refused = client_of(owner).post(url)
    assert refused.status_code == 200 and "delete them first" in refused.content.decode()
    response = api(owner).delete(f"/api/v1/registry/repositories/{repository.pk}/")
    assert response.status_code == 400
    assert "still has 1 tag (1.0)" in str(response.json())
    # Members may not delete tags, nor repositories.
    assert client_of(member).get(url).status_code == 403
    assert api(member).delete(f"/api/v1/registry/repositories/{repository.pk}/").status_code == 403

    client_of(owner).post(reverse("registry:tag_delete", args=[repository.pk, "1.0"]))
    detail = client_of(owner).get(reverse("registry:repository", args=[repository.pk]))
    assert url in detail.content.decode()  # the empty repository offers its deletion
    assert "Delete repository" in client_of(owner).get(url).content.decode()
    deleted = client_of(owner).post(url)
    assert deleted.status_code == 302 and deleted["Location"] == reverse("registry:list")
    assert not Repository.objects.filter(pk=repository.pk).exists()
    event = Event.objects.get(action="registry.repository.delete")
    assert event.message == f"Deleted the empty repository acme/{name}."
    # The registry still lists the emptied repository: a usage refresh must not revive it.
    quota.refresh_usage(tenant_a)
    assert not Repository.objects.filter(tenant=tenant_a, name=name).exists()


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_api_deletes_an_empty_repository(registry, settings, tenant_a, owner, outsider):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    repository = Repository.objects.create(tenant=tenant_a, name=f"never-{uuid.uuid4().hex[:6]}")
    path = f"/api/v1/registry/repositories/{repository.pk}/"
    assert api(outsider).delete(path).status_code == 404
    assert api(owner).delete(path).status_code == 204
    assert not Repository.objects.filter(pk=repository.pk).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_owner_deletes_an_empty_repository_in_the_browser(
    visitor, verified_user, registry, settings
):
    from apps.tenants import services as tenant_services

    settings.BERTH_REGISTRY_ADDR = registry.addr
    owner = verified_user(f"rita{uuid.uuid4().hex[:6]}")
    tenant = tenant_services.create_tenant(
        actor=owner, slug=f"rd{uuid.uuid4().hex[:6]}", name="Registry"
    )
    Repository.objects.create(tenant=tenant, name="leftover")
    visitor.log_in(owner.username)
    page = visitor.visit("/registry/")
    row = page.locator("tr", has_text=f"{tenant.slug}/leftover")
    row.get_by_role("link", name="Delete").click()
    page.wait_for_load_state("load")
    visitor.snap("confirm")
    card = page.locator("#repository-delete")
    expect(card).to_contain_text("It has no tag left")
    card.get_by_role("button", name="Delete repository").click()
    page.wait_for_url(re.compile(r"/registry/$"))
    visitor.snap("deleted")
    expect(
        page.get_by_text(f"Deleted the empty repository {tenant.slug}/leftover.")
    ).to_be_visible()
    assert not Repository.objects.filter(tenant=tenant).exists()
    visitor.assert_assets_loaded()
