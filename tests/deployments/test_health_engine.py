"""Health checks on the real engine: berth.yml's check reaches the container, Berth's own
probes judge the demo web image, and a container that stays unhealthy is replaced until
its service is reported as flapping."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from apps.catalog.models import Template, TemplateVersion
from apps.deployments import reconciler, services
from apps.deployments.models import Stack
from tests.fixtures.engine import engine_containers

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def demo_web() -> str:
    """berth-demo/web:1.0, built on the engine (idempotent, quick when up to date)."""
    script = Path(settings.BASE_DIR) / "deploy" / "build-images.sh"
    subprocess.run([str(script)], check=True, capture_output=True, timeout=600)
    return "berth-demo/web:1.0"


WEB = """
services:
  web:
    image: berth-demo/web:1.0
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "true"]
      retries: 7
"""


def deploy(owner, environment, name: str, health_check: dict, compose: str = WEB) -> Stack:
    """A stack of a one-version template whose berth.yml gives `web` this health check."""
    template, _ = Template.objects.get_or_create(
        slug=f"health-{name}",
        defaults={
            "name": name,
            "category": "web",
            "visibility": Template.Visibility.PUBLIC,
            "approval": Template.Approval.APPROVED,
        },
    )
    version = TemplateVersion.objects.create(
        template=template,
        version="1.0.0",
        compose=compose,
        questions=[],
        config={"services": {"web": {"health_check": health_check}}},
        content_hash=hashlib.sha256(compose.encode()).hexdigest(),
    )
    stack = services.create_stack(owner, environment, name, template_version=version)
    reconciler.reconcile_stack(stack.pk)
    return Stack.objects.get(pk=stack.pk)


def test_berth_yml_health_check_reaches_the_container(owner, environment, demo_web):
    wanted = {"test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"]}
    stack = deploy(owner, environment, "tuned", {**wanted, "interval": "1s", "timeout": "2s"})

    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    (container,) = engine_containers(stack)
    assert container["Config"]["Healthcheck"] == {
        "Test": wanted["test"],
        "Interval": 1_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 7,  # the compose file's, which berth.yml left out
        "StartPeriod": 5_000_000_000,  # the image's HEALTHCHECK, which neither sets
    }
    assert container["State"]["Health"]["Status"] == "healthy"
