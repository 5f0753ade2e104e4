"""What happens on the engines and in the registry after a tenant is deleted.

`tenants.services.delete_tenant` removes the tenant's rows and leaves a RetiredTenant;
`advance` then, level-triggered and safe to run again after a crash:

1. stops every container labelled with the tenant's id, on every host, at once;
2. empties the tenant's registry namespace (every manifest, then the repositories'
   folders) and removes the images of that namespace from every engine's cache; until
   this is done nobody can take the slug, since image names carry slugs;
3. once `remove_after` has passed, removes the containers, networks and volumes.

Engine objects are found by `io.berth.tenant-id` within this installation's labels, so
neither another installation's objects nor a new tenant with the same slug are touched.
Each step records a platform Event (no tenant: the tenant's own log went with it).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from celery import shared_task
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.compose.images import ImageReferenceError, parse_image
from apps.deployments import containers as naming
from apps.hosts.engine import EngineDriver, EngineError, get_engine
from apps.hosts.models import Host
from apps.registry import gc
from apps.registry.client import RegistryClient, RegistryError
from apps.registry.deploy import is_berth_registry
from apps.tenants.models import RetiredTenant

log = logging.getLogger(__name__)
STOP_TIMEOUT = 5  # seconds: "at once", but a clean stop for well-behaved processes


def pending() -> list[int]:
    return list(
        RetiredTenant.objects.filter(removed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def retiring_tenant_ids() -> set[str]:
    """Tenant ids (as in labels) whose objects the retirement, not the orphan sweep, owns."""
    rows = RetiredTenant.objects.filter(removed_at__isnull=True).values_list("tenant_id", flat=True)
    return {str(pk) for pk in rows}


def advance(retired_id: int) -> RetiredTenant | None:
    """Do every step that is due for one retired tenant; errors wait for the next beat."""
    retired = RetiredTenant.objects.filter(pk=retired_id).first()
    if retired is None or retired.removed_at is not None:
        return retired
    errors: list[str] = []
    if retired.stopped_at is None:
        _step(retired, "stopped_at", _on_every_host(retired, _stop_containers), errors)
    else:  # a deploy that was in flight when the tenant went may have started more
        _on_every_host(retired, _stop_containers)
    if retired.registry_cleared_at is None:
        _step(retired, "registry_cleared_at", _clear_registry(retired), errors)
    if retired.removed_at is None and timezone.now() >= retired.remove_after:
        _step(retired, "removed_at", _on_every_host(retired, _remove_objects), errors)
    retired.last_error = "; ".join(errors)[:2000]
    retired.save(update_fields=["last_error"])
    return retired


def _step(retired: RetiredTenant, field: str, outcome: tuple[str, list[str]], errors: list):
    message, failures = outcome
    record_event(
        f"tenant.retire.{field.removesuffix('_at')}",
        message=f"Tenant {retired.slug}: {message}",
        outcome=Event.Outcome.FAILURE if failures else Event.Outcome.SUCCESS,
        data={"tenant": retired.slug, "tenant_id": retired.tenant_id, "errors": failures},
    )
    if failures:
        errors.extend(failures)
        return
    setattr(retired, field, timezone.now())
    retired.save(update_fields=[field])


def _on_every_host(
    retired: RetiredTenant, action: Callable[[EngineDriver, RetiredTenant], str]
) -> tuple[str, list[str]]:
    """Run `action` on every registered engine; a host that fails is named, and the step
    stays due (the next pass tries again)."""
    done, failures = [], []
    for host in Host.objects.order_by("pk"):
        try:
            with get_engine(host) as engine:
                done.append(f"{host.name}: {action(engine, retired)}")
        except EngineError as exc:
            failures.append(f"{host.name}: {exc}")
    return "; ".join(done) or "no hosts", failures


def _owned(retired: RetiredTenant) -> dict[str, str]:
    return {naming.TENANT_ID: str(retired.tenant_id)}


def _stop_containers(engine: EngineDriver, retired: RetiredTenant) -> str:
    running = [
        c
        for c in engine.list_managed(_owned(retired))
        if c.state in ("running", "paused", "restarting")
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: engine.stop(c.id, timeout=STOP_TIMEOUT), running))
    return f"stopped {len(running)} container(s)"


def _remove_objects(engine: EngineDriver, retired: RetiredTenant) -> str:
    owned = _owned(retired)
    containers = engine.list_managed(owned)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda c: engine.remove(c.id), containers))
    networks = engine.list_networks(owned)
    for network in networks:
        engine.remove_network(network["name"], owner=owned)
    volumes = engine.list_volumes(owned)
    for volume in volumes:
        engine.remove_volume(volume["name"], owner=owned)
    return (
        f"removed {len(containers)} container(s), {len(networks)} network(s), "
        f"{len(volumes)} volume(s)"
    )


def in_namespace(reference: str, slug: str) -> bool:
    """Is `reference` an image of Berth's registry in namespace `slug`, by any spelling?"""
    try:
        ref = parse_image(reference)
    except ImageReferenceError:
        return False
    return is_berth_registry(ref.domain) and ref.path.startswith(f"{slug}/")


def _remove_cached_images(engine: EngineDriver, retired: RetiredTenant) -> str:
    removed = 0
    for image in engine.list_images():
        for name in [*image["tags"], *image["digests"]]:
            if in_namespace(name, retired.slug):
                engine.remove_image(name)
                removed += 1
    return f"removed {removed} cached image name(s)"


def _clear_registry(retired: RetiredTenant) -> tuple[str, list[str]]:
    """Delete every manifest under `<slug>/`, then the namespace's folders in the
    registry's storage (the registry keeps empty repositories listed otherwise); the
    blobs go at the next garbage collection."""
    client = RegistryClient()
    prefix = f"{retired.slug}/"
    deleted = 0
    try:
        for repository in [n for n in client.catalog() if n.startswith(prefix)]:
            for tag in client.list_tags(repository):
                try:
                    digest = client.manifest(repository, tag).digest
                    client.delete_manifest(repository, digest)
                    deleted += 1
                except RegistryError as exc:
                    if exc.status != 404:
                        raise
    except RegistryError as exc:
        if client.ping() or _namespace_folder(retired.slug) is not None:
            return "registry not cleared", [f"registry: {exc}"]  # tried again next pass
        # No registry runs and its storage holds nothing of the namespace: nothing to clear.
    folder = _namespace_folder(retired.slug)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    message, failures = _on_every_host(retired, _remove_cached_images)
    return f"deleted {deleted} image manifest(s); {message}", failures


def _namespace_folder(slug: str) -> Path | None:
    """The namespace's folder in the registry's local storage, if there is one."""
    try:
        root = gc.storage_root()
    except (OSError, ValueError):
        return None
    folder = root / "docker" / "registry" / "v2" / "repositories" / slug
    return folder if folder.is_dir() else None


@shared_task(name="deployments.retire_tenant", acks_late=True, ignore_result=True)
def retire_tenant(retired_id: int) -> None:
    advance(retired_id)


@shared_task(name="deployments.retire_tenants", acks_late=True, ignore_result=True)
def retire_tenants() -> int:
    """Beat: every retirement with a step due (stops and registry retried, removals once
    their grace has passed)."""
    ids = pending()
    for retired_id in ids:
        advance(retired_id)
    return len(ids)
