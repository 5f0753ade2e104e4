"""Celery tasks of the metrics: thin wrappers, run by beat."""

from celery import shared_task

from apps.monitoring import collector, rollup


@shared_task(name="monitoring.collect", acks_late=True, ignore_result=True)
def collect() -> int:
    """One collector pass (every BERTH_METRICS_INTERVAL_SECONDS); rows written."""
    return collector.collect().rows


@shared_task(name="monitoring.rollup", acks_late=True, ignore_result=True)
def roll_up() -> int:
    """Downsample into the coarser tiers and delete expired rows; rows written."""
    return rollup.run().written
