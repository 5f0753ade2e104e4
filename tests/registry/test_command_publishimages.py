"""`publishimages` refuses clearly before it touches the engine or the registry."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from apps.hosts.models import Host
from apps.registry.publish import demo_images, platform_path, platform_ref

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_admin_env")]


def test_without_an_admin_it_says_to_bootstrap(owner):
    with pytest.raises(CommandError, match="run berth_bootstrap first"):
        call_command("publishimages")
    with pytest.raises(CommandError, match="No active superuser named olivia"):
        call_command("publishimages", "--admin", "olivia")


@pytest.mark.parametrize(
    "image",
    ["nginx:1", "berth-demo/web", "berth-demo/Web:1", "berth-demo/web:", "other/web:1.0"],
)
def test_a_name_that_is_not_a_demo_image_is_refused_by_name(superuser, image):
    with pytest.raises(CommandError) as refused:
        call_command("publishimages", image)
    assert str(refused.value).startswith(f"images: {image}:")
    assert not Host.objects.exists(), "the engine was asked before the names were checked"


def test_demo_images_map_into_the_platform_namespace(settings):
    settings.BERTH_REGISTRY_ADDR = "127.0.0.1:5000"
    assert demo_images()[0] == "berth-demo/web:1.0"
    assert platform_path("berth-demo/guestbook-api:1.0") == ("guestbook-api", "1.0")
    assert platform_ref("berth-demo/web:1.1") == "127.0.0.1:5000/library/web:1.1"
    assert (
        platform_ref("berth-demo/web:1.1", "reg.example:443") == "reg.example:443/library/web:1.1"
    )
