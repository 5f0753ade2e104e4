"""Stacks deploy images from Berth's registry with a per-pull tenant credential."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from apps.deployments import reconciler
from apps.deployments.models import Stack
from apps.registry.deploy import registry_host, registry_pull_auth
from apps.tenants import services as tenant_services
from tests.conftest import PASSWORD
from tests.fixtures.engine import (  # noqa: F401  (fixtures)
    _cleanup,
    engine_containers,
    environment,
    host,
    image,
    make_stack,
)

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  app:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


def test_registry_host_parsing(settings):
    assert registry_host("nginx") is None
    assert registry_host("library/redis:7") is None
    assert registry_host("127.0.0.1:5000/acme/web:1") == "127.0.0.1:5000"
    assert registry_host("registry.example.com/acme/web") == "registry.example.com"
    settings.BERTH_REGISTRY_ADDR = "127.0.0.1:5000"
    assert registry_pull_auth("nginx:1", "acme") is None
    assert registry_pull_auth("other.example:5000/acme/web:1", "acme") is None
    auth = registry_pull_auth("127.0.0.1:5000/acme/web:1", "acme")
    assert auth["username"] == "berth-deployer$acme"
    assert auth["serveraddress"] == "127.0.0.1:5000"


@pytest.fixture
def other_environment(outsider, host):  # noqa: F811
    slug = f"it{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=outsider, slug=slug, name=f"Other {slug}")
    yield tenant.environments.order_by("pk").first()
    _cleanup(slug)


def test_stack_pulls_own_private_image_and_another_tenant_cannot(
    settings,
    registry,
    docker_cli,
    image,  # noqa: F811
    environment,  # noqa: F811
    other_environment,
    owner,
):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    slug = environment.tenant.slug
    assert docker_cli.login(registry, owner.username, PASSWORD).returncode == 0
    ref = docker_cli.tag(image, registry.ref(f"{slug}/app", "1"))
    push = docker_cli.push(ref)
    assert push.returncode == 0, push.stderr
    docker_cli.forget(ref)  # the engine must pull it from the registry
    docker_cli.logout(registry)

    stack = make_stack(environment, "fromreg", COMPOSE, {"IMAGE": ref})
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert [c["Config"]["Image"] for c in engine_containers(stack)] == [ref]

    # No login was left behind anywhere: not in the CLI's config, not in root's.
    for config in (docker_cli.config_dir / "config.json", Path.home() / ".docker/config.json"):
        if config.exists():
            assert registry.addr not in json.loads(config.read_text()).get("auths", {})

    # The image is now in the engine's cache, but another tenant still cannot use it:
    # registry images are always pulled with the stack tenant's credential.
    intruder = make_stack(other_environment, "steal", COMPOSE, {"IMAGE": ref})
    reconciler.reconcile_stack(intruder.pk)
    intruder.refresh_from_db()
    assert intruder.state != Stack.State.HEALTHY
    assert engine_containers(intruder) == []
    assert "denied" in intruder.state_reason.lower() or "unauthorized" in (
        intruder.state_reason.lower()
    ), intruder.state_reason
