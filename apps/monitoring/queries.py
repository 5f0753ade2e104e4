"""Reading metrics back: `series(obj, metric, start, end)` for charts, alerts and
autoscaling, and `latest` for the Prometheus endpoints.

The tier is chosen by the range (`tiers.choose_tier`); an object made of several series
(a service, a stack, a tenant) is the sum of its containers' series at each timestamp.
Counters come out as per-second rates; restarts as counts per row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Model, QuerySet
from django.utils import timezone

from apps.deployments.models import Container, Route, Service, Stack
from apps.hosts.models import Host
from apps.monitoring import tiers
from apps.monitoring.models import SAMPLE_MODELS, Series
from apps.tenants.models import Environment, Tenant


@dataclass(frozen=True)
class Metric:
    """A figure a chart can ask for: the series kind, the column, and whether the
    column is a counter (answered as a per-second rate)."""

    kind: int
    column: str
    counter: bool = False


METRICS: dict[str, Metric] = {
    "cpu_percent": Metric(Series.Kind.CONTAINER, "cpu_percent"),
    "cpu_percent_max": Metric(Series.Kind.CONTAINER, "cpu_percent_max"),
    "memory_bytes": Metric(Series.Kind.CONTAINER, "memory_bytes"),
    "memory_max_bytes": Metric(Series.Kind.CONTAINER, "memory_max_bytes"),
    "memory_limit_bytes": Metric(Series.Kind.CONTAINER, "memory_limit_bytes"),
    "net_rx_rate": Metric(Series.Kind.CONTAINER, "net_rx_bytes", counter=True),
    "net_tx_rate": Metric(Series.Kind.CONTAINER, "net_tx_bytes", counter=True),
    "block_read_rate": Metric(Series.Kind.CONTAINER, "block_read_bytes", counter=True),
    "block_write_rate": Metric(Series.Kind.CONTAINER, "block_write_bytes", counter=True),
    "restarts": Metric(Series.Kind.CONTAINER, "restarts"),
    "host_cpu_percent": Metric(Series.Kind.HOST, "cpu_percent"),
    "host_memory_bytes": Metric(Series.Kind.HOST, "memory_bytes"),
    "host_net_rx_rate": Metric(Series.Kind.HOST, "net_rx_rate"),
    "host_net_tx_rate": Metric(Series.Kind.HOST, "net_tx_rate"),
    "host_running": Metric(Series.Kind.HOST, "running"),
    "requests_rate": Metric(Series.Kind.ROUTE, "requests", counter=True),
    "errors_rate": Metric(Series.Kind.ROUTE, "errors", counter=True),
    "latency_ms": Metric(Series.Kind.ROUTE, "latency_ms"),
}

Point = tuple[datetime, float]


def series_of(obj: Model, kind: int, queryset: QuerySet | None = None) -> QuerySet:
    """The series of `kind` that make up `obj` (a Series, Container, Service, Stack,
    Environment, Tenant, Host or Route), within `queryset` (pass `visible_to`'s)."""
    qs = (queryset if queryset is not None else Series.objects.all()).filter(kind=kind)
    if isinstance(obj, Series):
        return qs.filter(pk=obj.pk)
    if isinstance(obj, Container):
        return qs.filter(container_pk=obj.pk)
    if isinstance(obj, Service):
        return qs.filter(stack_pk=obj.stack_id, service_name=obj.name)
    if isinstance(obj, Stack):
        return qs.filter(stack_pk=obj.pk)
    if isinstance(obj, Environment):
        return qs.filter(environment_pk=obj.pk)
    if isinstance(obj, Tenant):
        return qs.filter(tenant=obj)
    if isinstance(obj, Route):
        return qs.filter(route_pk=obj.pk)
    if isinstance(obj, Host):
        return qs.filter(host_pk=obj.pk)
    raise TypeError(f"no metrics for {type(obj).__name__}")


def series(
    obj: Model,
    metric: str,
    start: datetime,
    end: datetime | None = None,
    *,
    user: Any = None,
    token: Any = None,
    queryset: QuerySet | None = None,
    now: datetime | None = None,
) -> list[Point]:
    """`metric` of `obj` over [start, end] from the tier the range calls for: (time,
    value) pairs, summed over the object's series at each time.

    Pages and the API pass the `user` (and `token`): only what `Series.objects.
    visible_to` gives them is read, the tenancy rule as everywhere. Tasks acting for
    the platform (alerts, autoscaling) pass neither, or a `queryset` of their own."""
    if user is not None:
        queryset = Series.objects.visible_to(user, token=token)
    summed: dict[datetime, float] = defaultdict(float)
    for points in per_series(obj, [metric], start, end, queryset=queryset, now=now).values():
        for at, value in points[metric]:
            summed[at] += value
    return sorted(summed.items())


def per_series(
    obj: Model,
    metrics: list[str],
    start: datetime,
    end: datetime | None = None,
    *,
    queryset: QuerySet | None = None,
    now: datetime | None = None,
) -> dict[int, dict[str, list[Point]]]:
    """Each series of `obj` with its points of each of `metrics` (all of one series
    kind) over [start, end], from the tier the range calls for, in two queries whatever
    the number of series: what a caller needs that judges containers one by one (the
    autoscaler's mean over containers) rather than their sum. A series without a row in
    the range is left out; counters come out as per-second rates."""
    wanted = [METRICS[name] for name in metrics]
    kinds = {metric.kind for metric in wanted}
    if len(kinds) != 1:
        raise ValueError(f"metrics of one series kind only: {metrics}")
    kind = kinds.pop()
    now = now or timezone.now()
    end = end or now
    tier = tiers.choose_tier(tiers.configured(), start, end, now)
    ids = list(series_of(obj, kind, queryset).values_list("pk", flat=True))
    if not ids:
        return {}
    # One row before the range too, so that the first rate inside it is known.
    counted = any(metric.counter for metric in wanted)
    begin = start - timedelta(seconds=tier.step) if counted else start
    rows = (
        SAMPLE_MODELS[kind]
        .objects.filter(series_id__in=ids, tier=tier.index, at__gte=begin, at__lte=end)
        .order_by("series_id", "at")
        .values_list("series_id", "at", *[metric.column for metric in wanted])
    )
    raw: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        raw[row[0]].append(row[1:])
    found: dict[int, dict[str, list[Point]]] = {}
    for sid, series_rows in raw.items():
        found[sid] = {}
        for column, (name, metric) in enumerate(zip(metrics, wanted, strict=True), start=1):
            points = [(row[0], row[column]) for row in series_rows if row[column] is not None]
            if metric.counter:
                points = tiers.rates(points)
            found[sid][name] = [(at, value) for at, value in points if at >= start]
    return found


def latest(queryset: QuerySet, kind: int, now: datetime | None = None) -> list[tuple[Series, Any]]:
    """Each series of `queryset` of `kind` seen lately with its newest raw row (two
    queries): what a Prometheus scrape shows. Stale series (three intervals unseen)
    are left out, as Prometheus marks a vanished target's series stale."""
    from apps.monitoring.collector import interval

    now = now or timezone.now()
    recent = now - timedelta(seconds=interval() * 3)
    found = {s.pk: s for s in queryset.filter(kind=kind, last_seen_at__gte=recent)}
    if not found:
        return []
    model = SAMPLE_MODELS[kind]
    rows = model.objects.filter(tier=0, series_id__in=list(found), at__gte=recent).order_by(
        "series_id", "at"
    )
    newest = {row.series_id: row for row in rows}
    return [(found[sid], row) for sid, row in newest.items()]
