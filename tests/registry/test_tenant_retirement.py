"""Deleting a tenant empties its namespace in the real registry and the engine's cache
before anyone can take its slug again (image names carry slugs, not ids)."""

from __future__ import annotations

import uuid

import pytest

from apps.deployments import retirement
from apps.registry.client import RegistryClient
from apps.tenants import services as tenant_services
from tests.conftest import PASSWORD
from tests.fixtures.engine import docker, host, image  # noqa: F401 - fixtures

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def test_deleted_tenants_registry_namespace_is_emptied_before_its_slug_is_free(
    settings,
    registry,
    docker_cli,
    owner,
    image,  # noqa: F811
    host,  # noqa: F811
):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    settings.BERTH_REGISTRY_CONFIG = str(registry.config)
    slug = f"rg{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=owner, slug=slug, name="Pusher")
    try:
        assert docker_cli.login(registry, owner.username, PASSWORD).returncode == 0
        ref = docker_cli.tag(image, registry.ref(f"{slug}/app", "1"))
        assert docker_cli.push(ref).returncode == 0
        client = RegistryClient(base_url=registry.url)
        assert client.list_tags(f"{slug}/app") == ["1"]

        retired = tenant_services.delete_tenant(actor=owner, tenant=tenant)
        with pytest.raises(Exception, match="still being removed"):
            tenant_services.create_tenant(actor=owner, slug=slug, name="Too soon")
        retirement.advance(retired.pk)
        retired.refresh_from_db()
        assert retired.registry_cleared_at, retired.last_error
        assert client.list_tags(f"{slug}/app") == []
        assert f"{slug}/app" not in client.catalog()
        # The engine's cache no longer holds the namespace's image either.
        assert docker("images", "-q", ref) == ""
        heir = tenant_services.create_tenant(actor=owner, slug=slug, name="Heir")
        assert heir.pk != retired.tenant_id
    finally:
        docker_cli.logout(registry)
        docker("rmi", "-f", registry.ref(f"{slug}/app", "1"), check=False)
