"""The demo templates of the catalog, deployed by the reconciler on the real engine."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from apps.deployments import reconciler
from apps.deployments.models import Stack
from tests.integration.conftest import docker, engine_containers, make_stack, slots

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]
CATALOG = Path(settings.BASE_DIR) / "catalog"


def compose_of(slug: str) -> str:
    versions = sorted(p for p in (CATALOG / slug).iterdir() if (p / "docker-compose.yml").exists())
    return (versions[-1] / "docker-compose.yml").read_text()


def require_images(*refs: str) -> None:
    missing = [r for r in refs if not docker("images", "-q", r, check=False)]
    if missing:
        pytest.skip(f"demo images not built (deploy/build-images.sh): {', '.join(missing)}")


def test_guestbook_deploys_healthy_and_serves_its_page(environment):
    require_images(
        "berth-demo/guestbook-frontend:1.0", "berth-demo/guestbook-api:1.0", "berth-demo/worker:1.0"
    )
    stack = make_stack(environment, "guestbook", compose_of("guestbook"))
    began = time.monotonic()
    reconciler.reconcile_stack(stack.pk)
    elapsed = time.monotonic() - began
    print(f"\nguestbook healthy after {elapsed:.1f}s (one reconcile_stack call)")

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert [s for s, _ in slots(stack)] == ["api", "frontend", "stats"]
    frontend = next(
        c
        for c in engine_containers(stack)
        if c["Config"]["Labels"]["io.berth.service"] == "frontend"
    )
    (binding,) = frontend["NetworkSettings"]["Ports"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    with urllib.request.urlopen(f"http://127.0.0.1:{binding['HostPort']}/", timeout=5) as page:
        assert page.status == 200
