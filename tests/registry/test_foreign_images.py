"""Tenant B cannot run tenant A's private image out of the engine's cache, however named.

Real engine, real registry, real token service. Tenant A pushes a private image and
deploys it (so the engine has it cached); tenant B then tries every spelling of the
registry's address, the image id and its prefixes, the digest, and a local Docker Hub
style tag of the same image. The engine is the judge: no container of B's is ever created
from A's image, while A's own deployments (by several spellings) run.
"""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from apps.compose import ComposeError
from apps.deployments import reconciler
from apps.deployments.models import Stack
from apps.tenants import services as tenant_services
from tests.conftest import PASSWORD
from tests.docker_cli import docker
from tests.fixtures.engine import (  # noqa: F401  (fixtures)
    _cleanup,
    environment,
    host,
    make_stack,
)
from tests.registry.conftest import start_registry, stop_registry

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  app:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["sleep", "3600"]
"""


@pytest.fixture
def private_build(tmp_path):
    """A local image with unique content (its id is shared with nothing else on the
    engine, so `ancestor=` finds only containers made from it)."""
    tag = f"berth-test/foreign-{uuid.uuid4().hex[:8]}:1"
    shutil.copy(shutil.which("busybox"), tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    docker("build", "-q", "-t", tag, "--label", f"io.berth.test={tag}", str(tmp_path))
    image_id = docker("image", "inspect", "-f", "{{.Id}}", tag)
    yield tag, image_id
    docker("rmi", "-f", image_id, check=False)


@pytest.fixture
def other_build(tmp_path_factory, private_build):
    """Tenant B's own image: different content, so a different manifest."""
    context = tmp_path_factory.mktemp("other-build")
    shutil.copy(shutil.which("busybox"), context / "busybox")
    (context / "Dockerfile").write_text(DOCKERFILE + 'LABEL io.berth.test="other"\n')
    tag = private_build[0].replace("foreign-", "other-")
    docker("build", "-q", "-t", tag, str(context))
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def foreign_registry(tmp_path_factory, live_server):
    """A registry that is not Berth's (no authentication at all), on another port."""
    server = start_registry(tmp_path_factory.mktemp("foreign"), live_server.url, auth=False)
    yield server
    stop_registry(server)


@pytest.fixture
def thief_environment(outsider, host):  # noqa: F811
    slug = f"it{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=outsider, slug=slug, name=f"Thief {slug}")
    yield tenant.environments.order_by("pk").first()
    _cleanup(slug)


def containers_from(image_id: str) -> set[str]:
    """Every container on the engine made from this image, whoever made it."""
    return set(docker("ps", "-aq", "--no-trunc", "--filter", f"ancestor={image_id}").split())


def deploy(env, name: str, image: str) -> Stack:
    stack = make_stack(env, name, COMPOSE, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    return stack


def attempt(env, name: str, image: str, image_id: str, owned: set[str]) -> str:
    """Tenant B deploys `image`; the engine must hold no new container of A's image.
    Returns why the stack failed; B's networks are removed (address pools are few)."""
    stolen = deploy(env, name, image)
    try:
        assert stolen.state != Stack.State.HEALTHY, image
        assert containers_from(image_id) == owned, f"{image} ran tenant A's image"
    finally:
        _cleanup(env.tenant.slug)
    return stolen.state_reason


def push_private(registry, docker_cli, owner, build: str, repository: str) -> tuple[str, str]:
    """Tenant A pushes `build` as `repository` (private by default); the engine keeps no
    name for it afterwards, so every later use goes through Berth. Returns (ref, digest)."""
    assert docker_cli.login(registry, owner.username, PASSWORD).returncode == 0
    ref = docker_cli.tag(build, registry.ref(repository, "1"))
    push = docker_cli.push(ref)
    assert push.returncode == 0, push.stderr
    docker_cli.logout(registry)
    digest = next(
        name.split("@", 1)[1]
        for name in json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}", ref))
        if name.startswith(registry.addr)
    )
    docker("rmi", "--no-prune", ref)
    docker("rmi", "--no-prune", build)
    return ref, digest


def spellings(registry, live_server, path: str, digest: str) -> list[str]:
    """Tenant A's repository by every address that reaches (or may reach) the registry."""
    port = int(registry.addr.rsplit(":", 1)[1])
    hosts = [
        "127.0.0.1",
        "localhost",
        "LOCALHOST",
        "LocalHost",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0.0.0.0",
        "0",
        "127.0.0.2",
        urlsplit(live_server.url).hostname,  # the host name of BERTH_PUBLIC_URL
        socket.gethostname(),
        "127.0.0.1.nip.io",
    ]
    names = []
    for p in (port, port + 1):  # the gate, and docker-registry behind it
        for h in hosts:
            names += [f"{h}:{p}/{path}:1", f"{h}:{p}/{path}@{digest}"]
    return names


def test_another_tenant_cannot_run_a_private_image_from_the_cache(
    settings,
    registry,
    live_server,
    docker_cli,
    private_build,
    other_build,
    foreign_registry,
    environment,  # noqa: F811
    thief_environment,
    owner,
    outsider,
):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    build, image_id = private_build
    slug = environment.tenant.slug
    ref, digest = push_private(registry, docker_cli, owner, build, f"{slug}/secret")

    # Tenant A deploys its image: pulled with A's credential, it runs, and it is cached.
    mine = deploy(environment, "mine", ref)
    assert mine.state == Stack.State.HEALTHY, mine.state_reason
    owned = containers_from(image_id)
    assert len(owned) == 1
    assert docker("image", "inspect", "-f", "{{.Id}}", ref) == image_id

    # Tenant B, by name: every spelling of the registry, by tag and by digest.
    attempts = spellings(registry, live_server, f"{slug}/secret", digest)
    reasons = {
        image: attempt(thief_environment, f"steal{number}", image, image_id, owned)
        for number, image in enumerate(attempts)
    }
    # The spellings that name Berth's registry were refused by Berth's own check.
    for image in (ref, ref.replace("127.0.0.1", "LOCALHOST"), f"{ref[:-2]}@{digest}"):
        assert "may not pull" in reasons[image], reasons[image]

    # Tenant B, by image id: refused by the compose reader (an error on `image`)...
    for image in (image_id, image_id.split(":")[1], image_id[7:19], image_id[7:10]):
        with pytest.raises(ComposeError) as refused:
            make_stack(thief_environment, "byid", COMPOSE, {"IMAGE": image})
        assert refused.value.problems[0].path == "services.app.image"
        assert "image id" in refused.value.problems[0].message
    # ... and by the reconciler, for a spec written before the reader refused ids.
    for number, image in enumerate((image_id, image_id[7:19], image_id[7:10])):
        stolen = make_stack(thief_environment, f"byid{number}", COMPOSE, {"IMAGE": "busybox:1"})
        revision = stolen.current_revision
        revision.spec["project"]["services"]["app"]["image"] = image
        revision.save()
        reconciler.reconcile_stack(stolen.pk)
        stolen.refresh_from_db()
        assert "image id" in stolen.state_reason, stolen.state_reason
        assert containers_from(image_id) == owned, f"{image} ran tenant A's image"
        _cleanup(thief_environment.tenant.slug)

    # Tenant B, by digest in a repository of its own: the engine would answer that pull
    # from its cache; Berth asks the registry whether B's repository holds the digest.
    assert docker_cli.login(registry, outsider.username, PASSWORD).returncode == 0
    own = docker_cli.tag(other_build, registry.ref(f"{thief_environment.tenant.slug}/own", "1"))
    assert docker_cli.push(own).returncode == 0
    docker_cli.logout(registry)
    reason = attempt(thief_environment, "ownrepo", f"{own[:-2]}@{digest}", image_id, owned)
    assert "has no manifest" in reason, reason

    # Tenant B, by digest through another registry that answers: engine 20.10 serves a
    # digest from its cache only for the repository it was pulled from, so it asks that
    # registry; were it served from the cache, Berth would see the image is A's private
    # one (as for the local tag below).
    through = f"{foreign_registry.addr}/x/y@{digest}"
    reason = attempt(thief_environment, "foreign", through, image_id, owned)
    assert "has no such image or tag" in reason or "private image of Berth's registry" in reason, (
        reason
    )

    # A local Docker Hub style tag of the cached image (an operator's `docker tag`): B
    # must be able to pull the registry image it came from, and cannot.
    local = docker_cli.tag(ref, f"berth-test/stolen-{uuid.uuid4().hex[:6]}:1")
    reason = attempt(thief_environment, "bylocaltag", local, image_id, owned)
    assert "private image of Berth's registry" in reason, reason

    # Tenant A may use the same names: the local tag, and other spellings of its registry.
    port = registry.addr.rsplit(":", 1)[1]
    for number, image in enumerate(
        (local, f"localhost:{port}/{slug}/secret:1", f"127.0.0.1:{port}/{slug}/secret@{digest}")
    ):
        again = deploy(environment, f"mine{number}", image)
        assert again.state == Stack.State.HEALTHY, (image, again.state_reason)
    assert len(containers_from(image_id)) == len(owned) + 3
