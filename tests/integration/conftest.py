"""Integration fixtures: the real engine, a tiny busybox image, a run-unique tenant.

Everything a test creates in the engine carries the tenant's label (unique per run), so
the cleanup removes exactly this run's containers, volumes and networks.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from apps.deployments.models import Revision, Stack
from apps.deployments.spec import build_spec
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from tests.docker_cli import docker  # noqa: F401 - used here and by test modules

RUN_ID = uuid.uuid4().hex[:8]
IMAGE = f"berth-test-reconcile:{RUN_ID}"
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /www && chmod 1777 /tmp
ENV PATH=/bin
CMD ["sleep", "3600"]
"""


def inspect(container_id: str) -> dict:
    return json.loads(docker("inspect", container_id))[0]


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> Iterator[str]:
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is not installed"
    context = tmp_path_factory.mktemp("reconcile-image")
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(DOCKERFILE)
    docker("build", "-q", "-t", IMAGE, "--label", "io.berth.test=1", str(context))
    yield IMAGE
    docker("rmi", "-f", IMAGE, check=False)


@pytest.fixture
def host(db) -> Host:
    return Host.objects.create(
        name="local", endpoint=settings.BERTH_DOCKER_HOST, state=Host.State.ACTIVE
    )


@pytest.fixture
def environment(owner, host):
    slug = f"it{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=owner, slug=slug, name=f"Integration {slug}")
    env = tenant.environments.order_by("pk").first()
    yield env
    _cleanup(slug)


def _cleanup(tenant_slug: str) -> None:
    label = f"label=io.berth.tenant={tenant_slug}"
    ids = docker("ps", "-aq", "--filter", label, check=False)
    if ids:
        docker("rm", "-f", *ids.split(), check=False)
    volumes = docker("volume", "ls", "-q", "--filter", label, check=False)
    if volumes:
        docker("volume", "rm", "-f", *volumes.split(), check=False)
    networks = docker("network", "ls", "-q", "--filter", label, check=False)
    if networks:
        docker("network", "rm", *networks.split(), check=False)


def make_stack(environment, name: str, compose: str, variables: dict | None = None) -> Stack:
    """A stack with its first Revision, written directly (the service layer is not under
    test here): exactly what the reconciler reads."""
    compose = textwrap.dedent(compose)
    spec = build_spec(compose, variables or {}, environment)
    stack = Stack.objects.create(
        tenant=environment.tenant, environment=environment, name=name, compose=compose
    )
    return new_revision(stack, spec)


def new_revision(stack: Stack, spec: dict) -> Stack:
    number = (stack.revisions.order_by("-number").values_list("number", flat=True).first()) or 0
    revision = Revision.objects.create(stack=stack, number=number + 1, spec=spec)
    stack.current_revision = revision
    stack.save()
    return stack


def engine_containers(stack: Stack, *extra: str) -> list[dict]:
    """The stack's containers as the engine sees them (docker inspect of each)."""
    ids = docker(
        "ps",
        "-aq",
        "--filter",
        f"label=io.berth.stack={stack.pk}",
        "--filter",
        f"label=io.berth.tenant={stack.tenant.slug}",
        *extra,
    )
    return [inspect(i) for i in ids.split()]


def slots(stack: Stack) -> list[tuple[str, str]]:
    labels = [c["Config"]["Labels"] for c in engine_containers(stack)]
    return sorted((lab["io.berth.service"], lab["io.berth.replica"]) for lab in labels)
