"""Changes to repositories from pages and the API: visibility and tag deletion.

One function per operation, each checking the role on the repository's tenant and
recording an Event; views and viewsets only call these.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from apps.activity.services import record_event
from apps.core.queue import enqueue_on_commit
from apps.registry.models import Repository
from apps.registry.registry_client import RegistryClient, RegistryError
from apps.tenants.roles import Role
from apps.tenants.services import require_role


def set_visibility(*, actor: Any, repository: Repository, visibility: str) -> Repository:
    """Public repositories can be pulled by any signed-in user; private by the tenant."""
    require_role(actor, repository.tenant, Role.ADMIN)
    if visibility not in Repository.Visibility.values:
        raise ValidationError({"visibility": "Choose private or public."})
    if repository.visibility != visibility:
        repository.visibility = visibility
        repository.save(update_fields=["visibility"])
        record_event(
            "registry.repository.visibility",
            actor=actor,
            tenant=repository.tenant,
            obj=repository,
            data={"visibility": visibility},
        )
    return repository


def delete_tag(
    *, actor: Any, repository: Repository, tag: str, client: RegistryClient | None = None
) -> str:
    """Delete a tag by deleting the manifest it points at; returns that digest.

    The registry (distribution 2.8) deletes manifests by digest only, so every tag of the
    same image goes too: the confirmation page lists them. The disk is freed by the next
    garbage collection.
    """
    require_role(actor, repository.tenant, Role.ADMIN)
    client = client or RegistryClient()
    try:
        digest = client.manifest(repository.full_name, tag).digest
        client.delete_manifest(repository.full_name, digest)
    except RegistryError as exc:
        if exc.status == 404:
            raise ValidationError({"tag": f"{repository.full_name}:{tag} does not exist."}) from exc
        raise ValidationError({"tag": str(exc)}) from exc
    record_event(
        "registry.tag.delete",
        actor=actor,
        tenant=repository.tenant,
        obj=repository,
        message=f"Deleted {repository.full_name}:{tag} ({digest}).",
        data={"tag": tag, "digest": digest},
    )
    from apps.registry import tasks

    enqueue_on_commit(tasks.refresh_usage, repository.tenant_id)
    return digest


def garbage_collect(*, actor: Any) -> bool:
    """Queue a garbage collection (platform admins); False when the queue is down."""
    if not (actor.is_active and actor.is_superuser):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("Only a platform administrator runs garbage collection.")
    from apps.core.queue import enqueue
    from apps.registry import tasks

    record_event("registry.gc.queued", actor=actor)
    return enqueue(tasks.garbage_collect, actor.pk)
