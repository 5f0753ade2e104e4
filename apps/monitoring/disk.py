"""The disk probe's pass: how full the filesystem holding each host's engine data is
(`probe_disks`, run by beat every BERTH_DISK_PROBE_SECONDS).

Each active or draining host's engine runs one short-lived probe container
(`EngineDriver.data_root_usage`, apps/hosts/engine/diskprobe.py), hosts side by side in
a few threads that touch no database; the rows are written afterwards, one per host. A
Swarm host is measured through the engine Berth reaches, its manager's: the figures
are the manager node's data root, not the other nodes'.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.hosts.engine import DiskUsage, EngineError, get_engine
from apps.hosts.models import Host
from apps.monitoring.models import HostDisk

log = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    """What a pass did: hosts measured, and the error of each one that was not."""

    measured: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def fresh_seconds() -> int:
    """How long a measurement stands for the disk now: three probe intervals (at least
    a quarter of an hour); older figures are not judged by the alert rules."""
    return max(settings.BERTH_DISK_PROBE_SECONDS * 3, 900)


def fresh_disks(host_ids: Iterable[int], now: datetime) -> QuerySet[HostDisk]:
    """The hosts' disk rows whose figures still stand for the disk now (`fresh_seconds`):
    what the "disk nearly full" rule judges and the host's disk chart draws."""
    return HostDisk.objects.filter(
        host_id__in=host_ids, measured_at__gte=now - timedelta(seconds=fresh_seconds())
    )


def measure(host: Host) -> DiskUsage | str:
    """One host's figures, or why there are none (runs in a worker thread)."""
    try:
        with get_engine(host) as engine:
            return engine.data_root_usage()
    except EngineError as exc:
        return str(exc)


def probe_disks(now: datetime | None = None) -> ProbeResult:
    """Measure every live host and store the figures (or the error, keeping the last
    figures) in its HostDisk row."""
    now = now or timezone.now()
    hosts = list(Host.objects.filter(state__in=(Host.State.ACTIVE, Host.State.DRAINING)))
    result = ProbeResult()
    if not hosts:
        return result
    with ThreadPoolExecutor(max_workers=min(len(hosts), 4)) as pool:
        found = list(pool.map(measure, hosts))
    for host, usage in zip(hosts, found, strict=True):
        if isinstance(usage, str):
            log.warning("disk probe of host %s failed: %s", host.name, usage)
            result.failed[host.name] = usage
            HostDisk.objects.update_or_create(
                host=host, defaults={"error": usage[:500], "error_at": now}
            )
            continue
        result.measured.append(host.name)
        HostDisk.objects.update_or_create(host=host, defaults=_figures(usage, now))
    return result


def _figures(usage: DiskUsage, now: datetime) -> dict:
    return {
        "measured_at": now,
        "data_root": usage.data_root[:255],
        "storage_driver": usage.storage_driver[:32],
        "total_bytes": usage.total_bytes,
        "used_bytes": usage.used_bytes,
        "free_bytes": usage.free_bytes,
        "inodes_total": usage.inodes_total,
        "inodes_used": usage.inodes_used,
        "error": "",
        "error_at": None,
    }
