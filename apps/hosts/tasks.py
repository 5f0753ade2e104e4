"""Celery tasks for hosts: thin wrappers around apps.hosts.services."""

from celery import shared_task
from django.conf import settings

from apps.hosts import services


@shared_task(name="hosts.heartbeat", acks_late=True, ignore_result=True)
def heartbeat(host_id: int) -> str | None:
    """One host's heartbeat; safe to run twice (it only records what the engine says)."""
    host = services.heartbeat(host_id)
    return host.state if host else None


@shared_task(name="hosts.heartbeat_all", acks_late=True, ignore_result=True)
def heartbeat_all() -> int:
    """Fan out one heartbeat per host, so a slow engine never delays the others.

    Each expires after one beat interval: a backed-up worker skips stale heartbeats
    instead of piling them up.
    """
    ids = services.host_ids()
    for host_id in ids:
        heartbeat.apply_async((host_id,), expires=settings.BERTH_HEARTBEAT_SECONDS)
    return len(ids)
