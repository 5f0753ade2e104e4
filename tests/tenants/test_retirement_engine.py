"""Deleting a tenant on the real engine and registry: its containers stop at once, its
registry namespace is emptied, its containers, networks and volumes go after the grace
period, and a new tenant taking the same slug sees none of it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.activity.models import Event
from apps.deployments import reconciler, retirement
from apps.deployments.models import Stack
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from apps.tenants.models import RetiredTenant
from tests.fixtures.engine import _cleanup, docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

APP = """
services:
  app:
    image: ${IMAGE}
    command: ["sh", "-c", "echo secret > /data/file; exec sleep 3600"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
volumes:
  data: {}
"""


def by_tenant_id(kind: str, tenant_id: int) -> list[str]:
    label = f"label=io.berth.tenant-id={tenant_id}"
    if kind == "container":
        return docker("ps", "-aq", "--filter", label).split()
    return docker(kind, "ls", "-q", "--filter", label).split()


def running(ids: list[str]) -> list[str]:
    return [i for i in ids if docker("inspect", "-f", "{{.State.Running}}", i) == "true"]


@pytest.fixture
def doomed(owner, host):
    slug = f"rt{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=owner, slug=slug, name="Doomed")
    yield tenant
    _cleanup(slug)


def test_deleted_tenant_is_stopped_then_removed_and_its_slug_starts_clean(
    doomed, owner, image, settings
):
    settings.BERTH_TENANT_REMOVAL_GRACE_SECONDS = 3600
    env = doomed.environments.order_by("pk").first()
    stack = make_stack(env, "app", APP, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    tenant_id, slug = doomed.pk, doomed.slug
    containers = by_tenant_id("container", tenant_id)
    assert len(running(containers)) == 1 and by_tenant_id("volume", tenant_id)

    retired = tenant_services.delete_tenant(actor=owner, tenant=doomed)
    retirement.advance(retired.pk)
    retired.refresh_from_db()
    # Stopped at once, kept for the grace period (a mistake can still be undone by hand).
    assert retired.stopped_at and retired.removed_at is None
    assert running(containers) == [] and by_tenant_id("container", tenant_id) == containers
    assert by_tenant_id("volume", tenant_id) and by_tenant_id("network", tenant_id)
    actions = set(Event.objects.filter(tenant=None).values_list("action", flat=True))
    assert {"tenant.delete", "tenant.retire.stopped"} <= actions

    # The host pass's orphan sweep leaves them to the retirement, even with no grace.
    with override_settings(BERTH_ORPHAN_GRACE_SECONDS=0):
        reconciler.reconcile_host(Host.objects.get(name="local").pk)
    assert by_tenant_id("container", tenant_id) == containers

    # A new tenant with the same slug: new ids, so nothing of the old one is its own.
    heir = tenant_services.create_tenant(actor=owner, slug=slug, name="Heir")
    heir_env = heir.environments.order_by("pk").first()
    heir_stack = make_stack(heir_env, "app", APP.replace("echo secret >", "cat"), {"IMAGE": image})
    reconciler.reconcile_stack(heir_stack.pk)
    (heir_container,) = engine_containers(heir_stack)
    assert heir_container["Id"] not in containers
    old_volumes = set(by_tenant_id("volume", tenant_id))
    assert not {m.get("Name") for m in heir_container["Mounts"]} & old_volumes
    assert docker("exec", heir_container["Id"], "ls", "/data") == ""

    # After the grace period: containers, networks and volumes are gone.
    RetiredTenant.objects.filter(pk=retired.pk).update(
        remove_after=timezone.now() - timedelta(seconds=1)
    )
    retirement.retire_tenants()
    retired.refresh_from_db()
    assert retired.removed_at and retired.last_error == ""
    for kind in ("container", "volume", "network"):
        assert by_tenant_id(kind, tenant_id) == [], kind
    assert [c["Id"] for c in engine_containers(heir_stack)] == [heir_container["Id"]]
