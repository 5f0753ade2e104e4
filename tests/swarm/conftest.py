"""Fixtures shared by the modules running on the real swarm (the swarm itself is in
tests/fixtures/swarm.py): the demo image published, tenant A's environment targeting
the swarm registered as a host (its stacks' services and networks removed afterwards by
their tenant-id label), and a driver on the manager."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from apps.deployments import swarm_reconcile as sr
from apps.hosts import services as host_services
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from apps.registry.publish import platform_ref
from tests.swarm.cluster import Cluster, _answers

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


@pytest.fixture
def env_a(tenant_a):
    return tenant_a.environments.get(slug="dev")


@pytest.fixture
def swarm_host(swarm: Cluster, swarm_registry, env_a) -> Iterator[Host]:
    # Every test starts on a whole swarm: each worker's engine up, ready and active,
    # whatever an earlier test (a node loss, a drain) left behind.
    for node in swarm.worker_nodes:
        if not _answers(node):
            swarm.start_engine(node)
        swarm.manager.docker("node", "update", "--availability", "active", node.hostname,
                             check=False)  # fmt: skip
    swarm.wait_ready(*swarm.worker_nodes)
    host = host_services.register_host(
        actor=None, name=f"swarm-{swarm.run_id}", endpoint=swarm.manager.endpoint, kind="swarm"
    )
    host_services.heartbeat(host.pk)
    env_a.hosts.set([host])
    yield Host.objects.get(pk=host.pk)
    manager = swarm.manager
    for node in swarm.worker_nodes:
        manager.docker("node", "update", "--label-rm", sr.TENANT_NODE_LABEL, node.hostname,
                       check=False)  # fmt: skip
    label = f"label=io.berth.tenant-id={env_a.tenant_id}"
    installation = f"label=io.berth.installation={django_settings.BERTH_INSTALLATION_ID}"
    found = manager.docker("service", "ls", "-q", "--filter", label, "--filter", installation,
                           check=False).split()  # fmt: skip
    if found:
        manager.docker("service", "rm", *found, check=False)
    # Then what the services held: secrets, configs and overlays (refused while in use).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = []
        for kind in ("secret", "config", "network"):
            ids = manager.docker(kind, "ls", "-q", "--filter", label, "--filter", installation,
                                 check=False).split()  # fmt: skip
            if ids:
                manager.docker(kind, "rm", *ids, check=False)
                left += ids
        if not left:
            break
        time.sleep(0.5)
    # And until the removed services' task containers have gone from every node: the
    # next module's test may count what the manager's engine runs.
    alive = [node for node in swarm.nodes if _answers(node)]  # a node-loss test stops some
    while time.monotonic() < deadline:
        if not any(
            node.docker(
                "ps", "-aq", "--filter", label, "--filter", installation, check=False
            ).split()  # fmt: skip
            for node in alive
        ):
            break
        time.sleep(0.5)


@pytest.fixture
def engine(swarm: Cluster) -> Iterator[SwarmCluster]:
    with SwarmCluster(swarm.manager.endpoint, timeout=30) as driver:
        yield driver
