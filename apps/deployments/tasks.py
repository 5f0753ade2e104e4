"""Celery tasks for deployments: thin, id-carrying, safe to run twice (acks_late)."""

from celery import shared_task

from apps.deployments import reconciler
from apps.hosts.models import Host


@shared_task(name="deployments.reconcile_stack", acks_late=True, ignore_result=True)
def reconcile_stack(stack_id: int) -> None:
    """Converge one stack; another worker holding its lease makes this a no-op."""
    reconciler.reconcile_stack(stack_id)


@shared_task(name="deployments.reconcile_host", acks_late=True, ignore_result=True)
def reconcile_host(host_id: int) -> None:
    reconciler.reconcile_host(host_id)


@shared_task(name="deployments.reconcile_all", acks_late=True, ignore_result=True)
def reconcile_all() -> int:
    """Beat: one reconcile per host (unreachable ones too, so their stacks show unknown),
    each expiring after one interval so a backed-up worker skips stale passes."""
    from django.conf import settings

    ids = list(Host.objects.order_by("pk").values_list("pk", flat=True))
    for host_id in ids:
        reconcile_host.apply_async((host_id,), expires=settings.BERTH_RECONCILE_SECONDS)
    return len(ids)
