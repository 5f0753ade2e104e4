"""Metric series and their samples: one row per object per timestamp, the figures as
columns, in tiers (0 = raw, then coarser rollups; `tiers.py`).

A series outlives its object: a removed container's, a deleted route's history stays
until its samples expire, so it keeps its labels (names at first sight) and the ids of
what it described as plain numbers, not foreign keys (deleting a container or a route
costs the reconciler no extra query, and nothing dangles). Only the tenant is a
foreign key: a tenant's removal takes its history with it, and `visible_to` filters
on it as on every tenant-owned model. Host series have no tenant: platform admins only.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from apps.core.tenancy import TenantOwnedQuerySet
from apps.hosts.engine import diskprobe


class SeriesQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "tenant"


class Series(models.Model):
    """One thing measured over time: a container, a host or a frontier route."""

    class Kind(models.IntegerChoices):
        CONTAINER = 1, "Container"
        HOST = 2, "Host"
        ROUTE = 3, "Route"

    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    # "c<host id>:<engine id>", "h<host id>", "r<route id>": found again pass after pass.
    key = models.CharField(max_length=100, unique=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    environment_pk = models.PositiveIntegerField(null=True, blank=True)
    stack_pk = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    container_pk = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    route_pk = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    host_pk = models.PositiveIntegerField(null=True, blank=True)
    # Labels, as they were when the series began (Prometheus labels, chart legends).
    tenant_slug = models.CharField(max_length=63, blank=True)
    environment_slug = models.CharField(max_length=63, blank=True)
    stack_name = models.CharField(max_length=100, blank=True)
    service_name = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=255, blank=True)
    host_name = models.CharField(max_length=100, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    # Starts seen by the collector since the series began (Prometheus counter).
    restarts_total = models.PositiveIntegerField(default=0)

    objects = SeriesQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind"], name="monitoring_series_tenant")]

    def __str__(self) -> str:
        return self.key


class Sample(models.Model):
    """Columns every sample table has; `AGGREGATES` says how a rollup combines each
    figure of the finer tier: `avg` (weighted by `samples`), `max`, `last` (counters
    and limits: rates come from the difference of two rows), `sum` (events counted)."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="+")
    tier = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    samples = models.PositiveIntegerField(default=1)

    AGGREGATES: ClassVar[dict[str, str]] = {}

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.series_id}@{self.tier}:{self.at:%Y-%m-%dT%H:%M:%S}"


class ContainerSample(Sample):
    """A container's figures: CPU % of one CPU (200 = two CPUs busy), memory in use and
    its limit, and the engine's cumulative network, block I/O and CPU time counters."""

    class Health(models.IntegerChoices):
        NONE = 0, "no health check"
        STARTING = 1, "starting"
        HEALTHY = 2, "healthy"
        UNHEALTHY = 3, "unhealthy"
        STOPPED = 4, "not running"

    cpu_percent = models.FloatField(null=True, blank=True)
    cpu_percent_max = models.FloatField(null=True, blank=True)
    cpu_ns = models.BigIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)
    memory_max_bytes = models.BigIntegerField(default=0)
    memory_limit_bytes = models.BigIntegerField(default=0)
    net_rx_bytes = models.BigIntegerField(default=0)
    net_tx_bytes = models.BigIntegerField(default=0)
    block_read_bytes = models.BigIntegerField(default=0)
    block_write_bytes = models.BigIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    health = models.PositiveSmallIntegerField(choices=Health.choices, default=Health.NONE)

    AGGREGATES: ClassVar[dict[str, str]] = {
        "cpu_percent": "avg",
        "cpu_percent_max": "max",
        "cpu_ns": "last",
        "memory_bytes": "avg",
        "memory_max_bytes": "max",
        "memory_limit_bytes": "last",
        "net_rx_bytes": "last",
        "net_tx_bytes": "last",
        "block_read_bytes": "last",
        "block_write_bytes": "last",
        "restarts": "sum",
        "health": "last",
    }

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["series", "tier", "at"], name="monitoring_container_sample_key"
            )
        ]
        indexes = [models.Index(fields=["tier", "at"], name="monitoring_container_tier_at")]


class HostSample(Sample):
    """A host's totals over this installation's containers on it (rates in bytes per
    second between two passes) and the engine's size as its last heartbeat saw it."""

    containers = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    cpu_percent = models.FloatField(default=0.0)
    cpu_percent_max = models.FloatField(default=0.0)
    memory_bytes = models.BigIntegerField(default=0)
    memory_max_bytes = models.BigIntegerField(default=0)
    cpus = models.PositiveIntegerField(default=0)
    memory_total_bytes = models.BigIntegerField(default=0)
    net_rx_rate = models.FloatField(default=0.0)
    net_tx_rate = models.FloatField(default=0.0)
    block_read_rate = models.FloatField(default=0.0)
    block_write_rate = models.FloatField(default=0.0)
    # The disk probe's newest figures while they are fresh (`disk.fresh_seconds`), else
    # None: df's used bytes and used + available (what its Use% is a percent of).
    disk_used_bytes = models.BigIntegerField(null=True, blank=True)
    disk_usable_bytes = models.BigIntegerField(null=True, blank=True)

    AGGREGATES: ClassVar[dict[str, str]] = {
        "containers": "last",
        "running": "last",
        "cpu_percent": "avg",
        "cpu_percent_max": "max",
        "memory_bytes": "avg",
        "memory_max_bytes": "max",
        "cpus": "last",
        "memory_total_bytes": "last",
        "net_rx_rate": "avg",
        "net_tx_rate": "avg",
        "block_read_rate": "avg",
        "block_write_rate": "avg",
        "disk_used_bytes": "max",
        "disk_usable_bytes": "max",
    }

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["series", "tier", "at"], name="monitoring_host_sample_key"
            )
        ]
        indexes = [models.Index(fields=["tier", "at"], name="monitoring_host_tier_at")]


class RouteSample(Sample):
    """A frontier route's HAProxy counters (requests, 5xx answers; reset by a reload),
    its average response time and open sessions."""

    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    latency_ms = models.FloatField(default=0.0)
    latency_max_ms = models.FloatField(default=0.0)
    sessions = models.PositiveIntegerField(default=0)

    AGGREGATES: ClassVar[dict[str, str]] = {
        "requests": "last",
        "errors": "last",
        "latency_ms": "avg",
        "latency_max_ms": "max",
        "sessions": "avg",
    }

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["series", "tier", "at"], name="monitoring_route_sample_key"
            )
        ]
        indexes = [models.Index(fields=["tier", "at"], name="monitoring_route_tier_at")]


class RollupMark(models.Model):
    """How far the rollup into a tier has gone, per sample table: buckets before
    `done_until` are written. Rewriting a bucket gives the same row (an upsert of the
    same aggregate), so a crash between the rows and this mark only repeats work."""

    table = models.CharField(max_length=40)
    tier = models.PositiveSmallIntegerField()
    done_until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["table", "tier"], name="monitoring_rollup_mark")
        ]

    def __str__(self) -> str:
        return f"{self.table} tier {self.tier} until {self.done_until:%Y-%m-%dT%H:%M:%S}"


SAMPLE_MODELS: dict[int, type[Sample]] = {
    Series.Kind.CONTAINER: ContainerSample,
    Series.Kind.HOST: HostSample,
    Series.Kind.ROUTE: RouteSample,
}


class HostDisk(models.Model):
    """The newest measurement of the filesystem holding a host's engine data (its data
    root), by the disk probe (`disk.py`, every BERTH_DISK_PROBE_SECONDS): one row per
    host, overwritten by each probe. A failed probe keeps the last figures and says why.
    Platform admins see it (host page, /metrics); the "disk nearly full" alert rule reads
    it for the hosts a tenant's environments use."""

    host = models.OneToOneField("hosts.Host", on_delete=models.CASCADE, related_name="disk")
    measured_at = models.DateTimeField(null=True, blank=True)
    data_root = models.CharField(max_length=255, blank=True)
    storage_driver = models.CharField(max_length=32, blank=True)
    total_bytes = models.BigIntegerField(default=0)
    used_bytes = models.BigIntegerField(default=0)
    free_bytes = models.BigIntegerField(default=0)
    inodes_total = models.BigIntegerField(null=True, blank=True)
    inodes_used = models.BigIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"disk of host {self.host_id}: {self.used_percent:.1f}% used"

    @property
    def used_percent(self) -> float:
        return diskprobe.used_percent(self.used_bytes, self.free_bytes)

    @property
    def inodes_used_percent(self) -> float | None:
        return diskprobe.inodes_used_percent(self.inodes_total, self.inodes_used)
