"""Prometheus' text exposition format (0.0.4) of the newest sample of each series.

The platform endpoint shows every series, hosts included; the tenant endpoint only the
series of the tenants its caller belongs to (the queryset decides, never this module).
Counters keep Prometheus' `_total` names; route counters restart at zero with every
frontier reload, which Prometheus' `rate()` reads as a reset.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.monitoring.models import ContainerSample, HostDisk, Series
from apps.monitoring.queries import latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Getter = Callable[[Series, Any], float | None]

CONTAINER: list[tuple[str, str, str, Getter]] = [
    (
        "berth_container_cpu_percent",
        "gauge",
        "CPU use between the last two samples, percent of one CPU",
        lambda s, r: r.cpu_percent,
    ),
    ("berth_container_cpu_seconds_total", "counter", "CPU time used", lambda s, r: r.cpu_ns / 1e9),
    (
        "berth_container_memory_bytes",
        "gauge",
        "Memory in use (page cache excluded)",
        lambda s, r: r.memory_bytes,
    ),
    (
        "berth_container_memory_limit_bytes",
        "gauge",
        "Memory limit",
        lambda s, r: r.memory_limit_bytes,
    ),
    (
        "berth_container_network_receive_bytes_total",
        "counter",
        "Bytes received",
        lambda s, r: r.net_rx_bytes,
    ),
    (
        "berth_container_network_transmit_bytes_total",
        "counter",
        "Bytes sent",
        lambda s, r: r.net_tx_bytes,
    ),
    (
        "berth_container_block_read_bytes_total",
        "counter",
        "Bytes read from block devices",
        lambda s, r: r.block_read_bytes,
    ),
    (
        "berth_container_block_write_bytes_total",
        "counter",
        "Bytes written to block devices",
        lambda s, r: r.block_write_bytes,
    ),
    (
        "berth_container_restarts_total",
        "counter",
        "Restarts seen by the collector",
        lambda s, r: s.restarts_total,
    ),
    (
        "berth_container_running",
        "gauge",
        "1 while the container runs",
        lambda s, r: 0 if r.health == ContainerSample.Health.STOPPED else 1,
    ),
    (
        "berth_container_health_status",
        "gauge",
        "0 no health check, 1 starting, 2 healthy, 3 unhealthy, 4 not running",
        lambda s, r: r.health,
    ),
]
ROUTE: list[tuple[str, str, str, Getter]] = [
    (
        "berth_route_requests_total",
        "counter",
        "HTTP requests through the frontier (reset by a frontier reload)",
        lambda s, r: r.requests,
    ),
    (
        "berth_route_errors_total",
        "counter",
        "5xx answers through the frontier (reset by a frontier reload)",
        lambda s, r: r.errors,
    ),
    (
        "berth_route_latency_milliseconds",
        "gauge",
        "Average response time of the last 1024 requests",
        lambda s, r: r.latency_ms,
    ),
    ("berth_route_sessions", "gauge", "Open sessions", lambda s, r: r.sessions),
]
HOST: list[tuple[str, str, str, Getter]] = [
    (
        "berth_host_containers",
        "gauge",
        "This installation's containers on the host",
        lambda s, r: r.containers,
    ),
    ("berth_host_running_containers", "gauge", "Of which running", lambda s, r: r.running),
    (
        "berth_host_cpu_percent",
        "gauge",
        "CPU use of those containers, percent of one CPU",
        lambda s, r: r.cpu_percent,
    ),
    (
        "berth_host_memory_bytes",
        "gauge",
        "Memory in use by those containers",
        lambda s, r: r.memory_bytes,
    ),
    ("berth_host_cpus", "gauge", "CPUs of the engine", lambda s, r: r.cpus),
    (
        "berth_host_memory_total_bytes",
        "gauge",
        "Memory of the engine",
        lambda s, r: r.memory_total_bytes,
    ),
    (
        "berth_host_network_receive_bytes_per_second",
        "gauge",
        "Received by those containers",
        lambda s, r: r.net_rx_rate,
    ),
    (
        "berth_host_network_transmit_bytes_per_second",
        "gauge",
        "Sent by those containers",
        lambda s, r: r.net_tx_rate,
    ),
]

DISK: list[tuple[str, str, str, Getter]] = [
    (
        "berth_host_disk_total_bytes",
        "gauge",
        "Size of the data root's filesystem",
        lambda _, d: d.total_bytes,
    ),
    (
        "berth_host_disk_used_bytes",
        "gauge",
        "Used on the data root's filesystem",
        lambda _, d: d.used_bytes,
    ),
    (
        "berth_host_disk_free_bytes",
        "gauge",
        "Available to unprivileged writers on the data root's filesystem",
        lambda _, d: d.free_bytes,
    ),
    (
        "berth_host_disk_used_percent",
        "gauge",
        "Used, percent of used plus available (df's Use%)",
        lambda _, d: round(d.used_percent, 3),
    ),
    (
        "berth_host_disk_inodes_total",
        "gauge",
        "Inodes of that filesystem",
        lambda _, d: d.inodes_total,
    ),
    ("berth_host_disk_inodes_used", "gauge", "Inodes in use", lambda _, d: d.inodes_used),
    (
        "berth_host_disk_measured_timestamp_seconds",
        "gauge",
        "When the disk probe last measured it",
        lambda _, d: d.measured_at.timestamp(),
    ),
]


def render(queryset: QuerySet, *, hosts: bool, now: datetime | None = None) -> str:
    """The exposition of `queryset`'s series (and the hosts' when `hosts`)."""
    parts = [
        _family(latest(queryset, Series.Kind.CONTAINER, now), CONTAINER, _workload_labels),
        _family(latest(queryset, Series.Kind.ROUTE, now), ROUTE, _route_labels),
    ]
    if hosts:
        parts.append(_family(latest(queryset, Series.Kind.HOST, now), HOST, _host_labels))
        parts.append(_disk_family())
    return "".join(parts)


def _family(rows: list, metrics: list, labels: Callable[[Series], dict[str, str]]) -> str:
    if not rows:
        return ""
    out: list[str] = []
    labelled = [(_labels(labels(s)), s, r) for s, r in rows]
    for name, kind, help_text, value in metrics:
        out.append(f"# HELP {name} {help_text}.\n# TYPE {name} {kind}\n")
        for text, series, row in labelled:
            figure = value(series, row)
            if figure is not None:
                out.append(f"{name}{{{text}}} {_number(figure)}\n")
    return "".join(out)


def _disk_family() -> str:
    """Each host's newest disk measurement (apps/monitoring/disk.py)."""
    rows = HostDisk.objects.filter(measured_at__isnull=False).select_related("host")
    return _family([(d, d) for d in rows.order_by("host__name")], DISK, _disk_labels)


def _disk_labels(d: HostDisk) -> dict[str, str]:
    return {"host": d.host.name, "data_root": d.data_root}


def _workload_labels(s: Series) -> dict[str, str]:
    return {
        "tenant": s.tenant_slug,
        "environment": s.environment_slug,
        "stack": s.stack_name,
        "service": s.service_name,
        "container": s.name,
        "host": s.host_name,
    }


def _route_labels(s: Series) -> dict[str, str]:
    return {
        "tenant": s.tenant_slug,
        "environment": s.environment_slug,
        "stack": s.stack_name,
        "service": s.service_name,
        "route": s.name,
    }


def _host_labels(s: Series) -> dict[str, str]:
    return {"host": s.host_name}


def _labels(values: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))
