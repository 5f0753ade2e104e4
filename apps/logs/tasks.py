"""Celery tasks for the log store: thin wrappers around collector.py and services.py."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.logs import collector, services

log = logging.getLogger(__name__)

# One prune run deletes at most this many batches; beat runs it again later.
MAX_BATCHES = 200


@shared_task(name="logs.collect_host", acks_late=True, ignore_result=True)
def collect_host(host_id: int) -> int:
    """One bounded collection pass over a host; safe to run twice or at once (leases)."""
    result = collector.collect_host(host_id)
    if result.errors:
        log.warning("log collection on host %s: %s", host_id, "; ".join(result.errors[:5]))
    return result.lines


@shared_task(name="logs.collect_all", acks_late=True, ignore_result=True)
def collect_all() -> int:
    """Fan out one pass per engine host; each expires after one interval, so a backed-up
    worker skips stale passes (the next one reads from the same cursors)."""
    ids = collector.collect_all()
    for host_id in ids:
        collect_host.apply_async((host_id,), expires=settings.BERTH_LOG_COLLECT_SECONDS)
    return len(ids)


@shared_task(name="logs.prune", acks_late=True, ignore_result=True)
def prune() -> int:
    """Delete lines past their environment's retention, in batches."""
    return services.prune_lines(max_batches=MAX_BATCHES)
