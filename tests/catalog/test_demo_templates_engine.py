"""The demo templates of the catalog: their images published to Berth's registry by
`publishimages`, then deployed from there by the reconciler on the real engine, as a
new user would after `make run`."""

from __future__ import annotations

import io
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.activity.models import Event
from apps.catalog.loader import load_catalog
from apps.catalog.models import TemplateVersion
from apps.deployments import reconciler, services
from apps.deployments.models import Stack
from apps.registry.models import Repository
from apps.registry.publish import demo_images, platform_ref
from apps.tenants import services as tenant_services
from apps.tenants.models import PLATFORM_TENANT
from tests.fixtures.engine import _cleanup, docker, engine_containers, slots

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]
REPO = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def demo_images_built() -> list[str]:
    subprocess.run(
        [str(REPO / "deploy" / "build-images.sh")], check=True, capture_output=True, timeout=600
    )
    return demo_images()


@pytest.fixture
def published(settings, registry, superuser, host, demo_images_built):
    """The demo images pushed to the test registry by the command `make run` runs; the
    registry-named tags are then removed, so every deployment must pull."""
    settings.BERTH_REGISTRY_ADDR = registry.addr
    load_catalog(REPO / "catalog")
    call_command("publishimages", "--admin", superuser.username, stdout=io.StringIO())
    targets = [platform_ref(source) for source in demo_images_built]
    docker("rmi", *targets, check=False)
    yield targets
    docker("rmi", *targets, check=False)


@pytest.fixture
def second_environment(outsider, host):
    slug = f"it{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=outsider, slug=slug, name=f"Other {slug}")
    yield tenant.environments.order_by("pk").first()
    _cleanup(slug)


def version(slug: str, number: str) -> TemplateVersion:
    return TemplateVersion.objects.get(template__slug=slug, version=number)


def published_port(container: dict) -> int:
    (binding,) = container["NetworkSettings"]["Ports"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    return int(binding["HostPort"])


def test_publishing_makes_public_platform_repositories(published, superuser):
    repositories = Repository.objects.filter(tenant__slug=PLATFORM_TENANT)
    assert sorted(r.name for r in repositories) == [
        "burner",
        "guestbook-api",
        "guestbook-frontend",
        "web",
        "worker",
    ]
    assert all(r.is_public for r in repositories)
    publishes = Event.objects.filter(action="registry.image.publish", actor=superuser)
    assert publishes.count() == len(published)
    assert all(e.data["digest"].startswith("sha256:") for e in publishes)


def test_publishing_again_pushes_nothing(published, superuser):
    """What a `make run` restart does: the registry already has every image. (The fixture
    removed the registry-named tags, and with them what the engine knew of the pushed
    digests, so the first call here pushes again, sending no layer.)"""
    call_command("publishimages", "--admin", superuser.username, stdout=io.StringIO())
    pushes = Event.objects.filter(action="registry.image.publish").count()
    again = io.StringIO()
    call_command("publishimages", "--admin", superuser.username, stdout=again)
    lines = again.getvalue().splitlines()[1:]
    assert len(lines) == len(published)
    assert all(line.split()[:3] == ["up", "to", "date"] for line in lines), lines
    publishes = Event.objects.filter(action="registry.image.publish")
    assert publishes.count() == pushes, "an unchanged image is no new event"


def test_guestbook_deploys_from_the_registry_and_serves_its_page(published, owner, environment):
    stack = services.create_stack(
        owner, environment, "guestbook", template_version=version("guestbook", "1.0.0")
    )
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert [s for s, _ in slots(stack)] == ["api", "frontend", "stats"]
    images = {
        c["Config"]["Labels"]["io.berth.service"]: c["Config"]["Image"]
        for c in engine_containers(stack)
    }
    addr = settings.BERTH_REGISTRY_ADDR
    assert images == {
        "api": f"{addr}/library/guestbook-api:1.0",
        "frontend": f"{addr}/library/guestbook-frontend:1.0",
        "stats": f"{addr}/library/worker:1.0",
    }
    pulls = Event.objects.filter(object_type="stack", object_id=str(stack.pk), action="image.pull")
    assert pulls.count() == 3, list(pulls.values_list("message", flat=True))
    frontend = next(
        c
        for c in engine_containers(stack)
        if c["Config"]["Labels"]["io.berth.service"] == "frontend"
    )
    url = f"http://127.0.0.1:{published_port(frontend)}/"
    with urllib.request.urlopen(url, timeout=5) as page:
        assert page.status == 200


def test_every_tenant_deploys_the_public_demo_image_and_upgrades(
    published, owner, environment, outsider, second_environment
):
    """`library` is public: two unrelated tenants pull it, each with its own credential;
    the web page's upgrade pulls the 1.1 image from the registry too."""
    for actor, env in ((owner, environment), (outsider, second_environment)):
        stack = services.create_stack(
            actor, env, "page", template_version=version("web-page", "1.0.0")
        )
        reconciler.reconcile_stack(stack.pk)
        stack.refresh_from_db()
        assert stack.state == Stack.State.HEALTHY, stack.state_reason

    services.upgrade(outsider, stack, version("web-page", "1.1.0"))
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    (container,) = engine_containers(stack)
    assert container["Config"]["Image"] == f"{settings.BERTH_REGISTRY_ADDR}/library/web:1.1"
    with urllib.request.urlopen(
        f"http://127.0.0.1:{published_port(container)}/cgi-bin/info", timeout=5
    ) as info:
        assert b"1.1" in info.read()


def test_publishing_an_image_that_was_not_built_names_it(superuser, host):
    with pytest.raises(CommandError) as refused:
        call_command("publishimages", "berth-demo/never-built:9")
    assert "berth-demo/never-built:9" in str(refused.value)
