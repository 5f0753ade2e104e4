"""Celery tasks of the registry: thin, id-carrying, each run visible as an Event."""

from celery import shared_task

from apps.registry import quota
from apps.tenants.models import Tenant


@shared_task(name="registry.garbage_collect", acks_late=False, ignore_result=True)
def garbage_collect(actor_id: int | None = None) -> int:
    """Free the disk of deleted tags (registry read-only meanwhile); the bytes freed.

    Not acks_late: a collection interrupted by a lost worker is not re-run blindly; the
    script that runs it restarts the registry read-write on its next run anyway.
    """
    from django.contrib.auth import get_user_model

    from apps.registry import services  # services queues this task

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    result = services.collect_garbage(actor=actor)
    for tenant in Tenant.objects.all():
        quota.refresh_usage(tenant)
    return result.freed


@shared_task(name="registry.refresh_usage", acks_late=True, ignore_result=True)
def refresh_usage(tenant_id: int) -> None:
    """Recompute a tenant's storage after a push or a delete."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        quota.refresh_usage(tenant)
