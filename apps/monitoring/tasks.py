"""Celery tasks of the metrics: thin wrappers, run by beat."""

from celery import shared_task

from apps.monitoring import collector, disk, rollup


@shared_task(name="monitoring.collect", acks_late=True, ignore_result=True)
def collect() -> int:
    """One collector pass (every BERTH_METRICS_INTERVAL_SECONDS); rows written."""
    return collector.collect().rows


@shared_task(name="monitoring.rollup", acks_late=True, ignore_result=True)
def roll_up() -> int:
    """Downsample into the coarser tiers and delete expired rows; rows written."""
    return rollup.run().written


@shared_task(name="monitoring.probe_disks", acks_late=True, ignore_result=True)
def probe_disks() -> int:
    """Measure each host's data-root disk (every BERTH_DISK_PROBE_SECONDS); hosts measured."""
    return len(disk.probe_disks().measured)
