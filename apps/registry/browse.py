"""What the pages and the API show about a repository's tags: one place that asks the
registry (manifests, image configs) and adds who pushed each tag and when, from the
stored notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from apps.registry import config
from apps.registry.client import ImageConfig, Layer, RegistryClient, RegistryError
from apps.registry.models import RegistryEvent, Repository

MAX_TAGS = 100


@dataclass
class TagInfo:
    tag: str
    digest: str = ""
    size: int = 0
    created: str = ""
    pushed_at: datetime | None = None
    pushed_by: str = ""
    layers: tuple[Layer, ...] = ()
    config: ImageConfig | None = None
    platforms: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "size": self.size,
            "created": self.created,
            "pushed_at": self.pushed_at.isoformat() if self.pushed_at else None,
            "pushed_by": self.pushed_by,
        }


def pull_command(repository: Repository, tag: str) -> str:
    return f"docker pull {config.registry_addr()}/{repository.full_name}:{tag}"


def last_pushes(repository: Repository) -> dict[str, RegistryEvent]:
    """The latest counted push event per tag."""
    pushes = RegistryEvent.objects.filter(
        repository=repository, action=RegistryEvent.Action.PUSH, counted=True
    ).exclude(tag="")
    latest: dict[str, RegistryEvent] = {}
    for event in pushes.order_by("timestamp"):
        latest[event.tag] = event
    return latest


def tag_info(
    repository: Repository,
    tag: str,
    client: RegistryClient,
    pushes: dict[str, RegistryEvent] | None = None,
    with_layers: bool = False,
) -> TagInfo:
    info = TagInfo(tag=tag)
    push = (pushes if pushes is not None else last_pushes(repository)).get(tag)
    if push is not None:
        info.pushed_at, info.pushed_by = push.timestamp, push.actor
    try:
        top = client.manifest(repository.full_name, tag)
        manifests = (
            [top] if not top.children else client.platform_manifests(repository.full_name, tag)
        )
        image = manifests[0]
        info.digest = top.digest
        info.size = sum(m.image_size for m in manifests)
        if image.config_digest:
            info.config = client.image_config(repository.full_name, image.config_digest)
            info.created = info.config.created
            info.platforms = [f"{info.config.os}/{info.config.architecture}"]
        if with_layers:
            info.layers = image.layers
    except RegistryError as exc:
        info.error = str(exc)
    return info


def repository_tags(repository: Repository, client: RegistryClient | None = None) -> list[TagInfo]:
    """Every tag (up to MAX_TAGS) with digest, size, creation and push time and pusher."""
    client = client or RegistryClient()
    pushes = last_pushes(repository)
    names = client.list_tags(repository.full_name)[:MAX_TAGS]
    tags = [tag_info(repository, name, client, pushes) for name in names]
    return sorted(tags, key=lambda t: t.created or "", reverse=True)
