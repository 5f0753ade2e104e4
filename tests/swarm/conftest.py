"""Fixtures shared by the modules running on the real swarm (the swarm itself is in
tests/fixtures/swarm.py)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from apps.registry.publish import platform_ref

REPO = Path(django_settings.BASE_DIR)


@pytest.fixture(scope="session")
def demo_images_built() -> None:
    """deploy/build-images.sh (idempotent; under a second when the images are current)."""
    subprocess.run(
        ["bash", str(REPO / "deploy" / "build-images.sh")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


@pytest.fixture
def published(settings, registry, swarm_registry, superuser, host, demo_images_built):
    """The demo web image in Berth's registry (the `make run` way), pullable by every node."""
    from apps.catalog.loader import load_catalog

    settings.BERTH_REGISTRY_ADDR = registry.addr
    load_catalog(REPO / "catalog")
    call_command("publishimages", "--admin", superuser.username, stdout=io.StringIO())
    return platform_ref("berth-demo/web:1.0")
