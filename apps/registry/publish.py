"""Publishing the platform's own images into Berth's registry.

The demo images are built on the local engine as `berth-demo/<name>:<tag>` by
deploy/build-images.sh. Published, they are `<registry>/library/<name>:<tag>`: public
repositories of the platform tenant, which the demo templates name as
`${BERTH_REGISTRY}/library/<name>:<tag>`. A deployment then pulls them from the registry
like any tenant image, with the stack tenant's short-lived credential, so the demo
templates exercise the same path as a tenant's own images. Publishing itself is
`services.publish_images`; this module names the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.registry.client import RegistryClient, RegistryError
from apps.registry.token.scopes import REPOSITORY_NAME
from apps.tenants.models import PLATFORM_TENANT

LOCAL_PREFIX = "berth-demo/"
# One `berth-demo/<name>:<tag>` a line; deploy/build-images.sh builds the same list.
DEMO_IMAGES_FILE = Path(settings.BASE_DIR) / "deploy" / "images" / "demo-images.txt"


@dataclass(frozen=True)
class Published:
    source: str
    target: str
    digest: str
    pushed: bool = True  # False: the registry already had this very image under the tag


def demo_images() -> list[str]:
    """The demo images' local names, from the list the build script also reads."""
    lines = DEMO_IMAGES_FILE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def platform_path(source: str) -> tuple[str, str]:
    """`berth-demo/web:1.0` -> ("web", "1.0"): the repository under the platform tenant
    and the tag. ValidationError for anything that is not a demo image name."""
    name, colon, tag = source.removeprefix(LOCAL_PREFIX).rpartition(":")
    if not source.startswith(LOCAL_PREFIX) or not colon or not tag:
        raise ValidationError(
            {"image": f"{source}: expected {LOCAL_PREFIX}<name>:<tag>, a demo image name."}
        )
    if not REPOSITORY_NAME.match(name) or "/" in tag:
        raise ValidationError({"image": f"{source}: not a valid repository name and tag."})
    return name, tag


def platform_ref(source: str, registry: str | None = None) -> str:
    """Where `source` is published: `127.0.0.1:5000/library/web:1.0`."""
    name, tag = platform_path(source)
    return f"{registry or settings.BERTH_REGISTRY_ADDR}/{PLATFORM_TENANT}/{name}:{tag}"


def already_published(engine: Any, source: str, target: str) -> str:
    """The digest when the registry's tag already points at this local image, else "".

    Skipping the push then leaves the tag untouched: a push rewrites the tag even when no
    layer moves, and a deployment pulling that tag at the same moment can read it half
    written (distribution answers 500 "invalid checksum digest format").
    """
    repository, _, tag = target.rpartition(":")
    local = {
        name.partition("@")[2]
        for name in engine.repo_digests(source)
        if name.partition("@")[0] == repository
    }
    if not local:
        return ""
    path = repository.split("/", 1)[1]
    try:
        digest = RegistryClient().manifest(path, tag).digest
    except RegistryError:
        return ""
    return digest if digest in local else ""
