"""Storage used per tenant and per repository, and the tenant's storage quota.

Usage is computed from what the registry holds, not from upload events: for every tag of
every repository in the tenant's namespace, the manifest's config and layer sizes,
counted once per digest (a layer shared by two images of a tenant is stored once). A
repository's figure dedupes within the repository, so the repositories of a tenant can
add up to more than the tenant's figure.

The quota is enforced twice:
- at token time: `can_push(tenant)` is asked by the token service before it grants
  "push" on a repository of the tenant; a tenant at or over its quota gets no push right;
- at the manifest: the gate (`services.store_manifest`) asks `admit_manifest` before the
  registry stores an image's manifest. The blobs the tenant does not store yet are counted
  at their real size; a push that would pass the quota is refused, and one that fits
  reserves its bytes at once, so two pushes racing each other cannot both slip under the quota.
Either way the docker client prints the message ("denied: ..."). Usage is recomputed
from the registry after every push and delete notification (task
registry.refresh_usage) and after garbage collection, which corrects any reservation
of a push that did not complete. Setting a quota or an alert threshold is
`services.set_quota` / `services.set_pull_alert_threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from apps.activity.models import Event
from apps.registry.client import RegistryClient, RegistryError
from apps.registry.models import RegistryEvent, Repository, TenantRegistryQuota
from apps.registry.notifications import MANIFEST_TYPES
from apps.tenants.models import Tenant
from apps.tenants.quotas import QuotaLine


@dataclass
class Usage:
    total: int = 0
    repositories: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size, whole tenant


def quota_of(tenant: Tenant) -> TenantRegistryQuota:
    quota, _ = TenantRegistryQuota.objects.get_or_create(tenant=tenant)
    return quota


def tenant_repositories(tenant: Tenant, client: RegistryClient) -> list[str]:
    """Repository names (without the namespace) the registry holds for `tenant`."""
    prefix = f"{tenant.slug}/"
    try:
        names = [n[len(prefix) :] for n in client.catalog() if n.startswith(prefix)]
    except RegistryError:
        names = []
    known = Repository.objects.filter(tenant=tenant).values_list("name", flat=True)
    return sorted(set(names) | set(known))


def _blobs_of(client: RegistryClient, repository: str) -> dict[str, int]:
    """digest -> size of every config and layer referenced by a tag of `repository`."""
    blobs: dict[str, int] = {}
    for tag in client.list_tags(repository):
        try:
            manifests = client.platform_manifests(repository, tag)
        except RegistryError as exc:
            if exc.status == 404:
                continue  # deleted between the listing and now
            raise
        for manifest in manifests:
            if manifest.config_digest:
                blobs[manifest.config_digest] = manifest.config_size
            for layer in manifest.layers:
                blobs[layer.digest] = layer.size
    return blobs


def last_collection():
    """When garbage collection last freed the blobs no tag references (None: never)."""
    done = Event.objects.filter(action="registry.gc", outcome=Event.Outcome.SUCCESS)
    return done.order_by("-created_at").values_list("created_at", flat=True).first()


def uploaded_blobs(tenant: Tenant) -> dict[str, int]:
    """digest -> size of the blobs the tenant uploaded since the last garbage collection
    (the registry's blob push events): stored, referenced by a tag or not, until a
    collection frees the unreferenced ones."""
    events = RegistryEvent.objects.filter(tenant=tenant, action=RegistryEvent.Action.PUSH)
    since = last_collection()
    if since is not None:
        events = events.filter(timestamp__gt=since)
    rows = events.exclude(media_type__in=MANIFEST_TYPES).exclude(digest="")
    return dict(rows.values_list("digest", "size"))


def note_uploaded_blob(tenant: Tenant, digest: str, size: int) -> None:
    """A blob upload the registry reported: counted at once, even if no manifest ever
    references it (else a tenant could fill the disk with unreferenced blobs). Once the
    tenant is at its quota, the token service grants no more push."""
    if not digest or size <= 0:
        return
    with transaction.atomic():
        quota = TenantRegistryQuota.objects.select_for_update().filter(tenant=tenant).first()
        if quota is None:
            quota = TenantRegistryQuota.objects.create(tenant=tenant)
        held = quota.blob_sizes or {}
        if digest in held:
            return
        quota.blob_sizes = {**held, digest: size}
        quota.used_bytes += size
        quota.save(update_fields=["blob_sizes", "used_bytes"])


def compute_usage(tenant: Tenant, client: RegistryClient | None = None) -> Usage:
    """Bytes stored for `tenant` in total (dedupe by digest) and per repository; the
    total includes blobs uploaded since the last garbage collection that no tag
    references (yet)."""
    client = client or RegistryClient()
    usage, seen = Usage(), {}
    for name in tenant_repositories(tenant, client):
        blobs = _blobs_of(client, f"{tenant.slug}/{name}")
        usage.repositories[name] = sum(blobs.values())
        seen.update(blobs)
    for digest, size in uploaded_blobs(tenant).items():
        seen.setdefault(digest, size)
    usage.total = sum(seen.values())
    usage.blobs = seen
    return usage


@transaction.atomic
def refresh_usage(tenant: Tenant, client: RegistryClient | None = None) -> Usage:
    """Recompute and store the tenant's and its repositories' storage figures."""
    usage = compute_usage(tenant, client)
    known = set(Repository.objects.filter(tenant=tenant).values_list("name", flat=True))
    for name, size in usage.repositories.items():
        # The registry lists an emptied repository for ever: one deleted here (nothing
        # in it) must not come back; a push (size > 0) brings it back.
        if size or name in known:
            Repository.objects.update_or_create(
                tenant=tenant, name=name, defaults={"size_bytes": size}
            )
    TenantRegistryQuota.objects.update_or_create(
        tenant=tenant, defaults={"used_bytes": usage.total, "blob_sizes": usage.blobs}
    )
    return usage


def can_push(tenant: Tenant) -> tuple[bool, str]:
    """May the tenant store more? (ok, message the docker client shows when not ok)."""
    quota = TenantRegistryQuota.objects.filter(tenant=tenant).first()
    if quota is None or not quota.quota_bytes or quota.used_bytes < quota.quota_bytes:
        return True, ""
    return False, (
        f"storage quota of {tenant.slug} exceeded: {filesizeformat(quota.used_bytes)} used "
        f"of {filesizeformat(quota.quota_bytes)}; delete tags or ask an administrator "
        "for more space"
    )


def is_limited(tenant: Tenant) -> bool:
    """Has the tenant a storage quota (0 means unlimited)?"""
    return TenantRegistryQuota.objects.filter(tenant=tenant, quota_bytes__gt=0).exists()


def admit_manifest(tenant: Tenant, blobs: dict[str, int]) -> str | None:
    """Reserve the bytes of `blobs` (digest -> stored size) the tenant does not hold yet,
    or return why not: the message the docker client shows when the push would pass the
    quota. Without a quota nothing is counted."""
    row = TenantRegistryQuota.objects.filter(tenant=tenant).first()
    if row is not None and row.quota_bytes and row.used_bytes and not row.blob_sizes:
        refresh_usage(tenant)  # usage measured before digests were kept: learn them once
    with transaction.atomic():
        quota = TenantRegistryQuota.objects.select_for_update().filter(tenant=tenant).first()
        if quota is None or not quota.quota_bytes:
            return None
        held = quota.blob_sizes or {}
        new = {digest: size for digest, size in blobs.items() if digest not in held}
        needed = sum(new.values())
        # Blobs are counted when uploaded (note_uploaded_blob), so uploads past the quota
        # leave the tenant over it: then no image is tagged, even one that adds nothing.
        if quota.used_bytes + needed > quota.quota_bytes:
            needs = f"this push needs {filesizeformat(needed)} more, " if needed else ""
            return (
                f"storage quota of {tenant.slug} exceeded: {needs}"
                f"{filesizeformat(quota.used_bytes)} used of {filesizeformat(quota.quota_bytes)}"
                f"{'' if needed else ' (layers uploaded count)'}; delete tags or ask an "
                "administrator for more space"
            )
        if not new:
            return None
        quota.blob_sizes = {**held, **new}
        quota.used_bytes += needed
        quota.save(update_fields=["blob_sizes", "used_bytes"])
    return None


# --- the tenant's quota page and API (settings.BERTH_QUOTA_PROVIDERS) -----------------------

QUOTA_KEYS = ("registry_storage",)


def quota_lines(tenant: Tenant) -> list[QuotaLine]:
    """Registry storage beside the tenant's other quotas (bytes; 0: unlimited)."""
    row = TenantRegistryQuota.objects.filter(tenant=tenant).first()
    return [
        QuotaLine(
            key="registry_storage",
            label="Registry storage",
            used=row.used_bytes if row else 0,
            limit=row.quota_bytes if row else 0,
            unit="bytes",
        )
    ]


def set_quota_values(actor: Any, tenant: Tenant, values: dict) -> None:
    """`registry_storage` (bytes) from the tenant's quota form or API: `services.set_quota`."""
    value = values["registry_storage"]
    if isinstance(value, bool) or not str(value).strip().isdecimal():
        raise ValidationError({"registry_storage": "Use 0 (unlimited) or a number of bytes."})
    if int(value) >= 2**63:
        raise ValidationError({"registry_storage": "Too large."})
    from apps.registry import services  # services uses this module's accounting

    services.set_quota(actor=actor, tenant=tenant, quota_bytes=int(value))
