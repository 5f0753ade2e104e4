"""What the portal's charts draw: an object's figures over a range, as plain JSON.

One object (a container, a service, a stack, an environment, the tenant, a route or a
host) and one range give a few charts (CPU and memory against their limits, network,
block I/O, requests and errors per second, latency), all on one time axis, with the
times the object's containers restarted as markers. Each sample table is read once per
object and range (`_columns`: the series ids, then one query for every column a chart
needs), from the tier the range calls for, so a 90-day chart costs what a 1-hour one
does. Objects are found through `visible_to`, as everywhere: another tenant's id is a
404, and host charts are for platform admins only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import Http404
from django.utils import timezone

from apps.core.tenancy import is_platform_admin
from apps.deployments.models import Container, Route, Service, Stack
from apps.deployments.resources import service_resources
from apps.deployments.spec import project_from_spec
from apps.hosts.models import Host
from apps.monitoring import tiers
from apps.monitoring.models import SAMPLE_MODELS, Series
from apps.tenants.models import Environment, Tenant

#: The ranges a chart offers: name -> seconds.
RANGES: dict[str, int] = {
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 24 * 3600,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
}
DEFAULT_RANGE = "24h"
#: The objects a chart can be of: name -> model (found with `visible_to`).
KINDS: dict[str, type[Model]] = {
    "container": Container,
    "service": Service,
    "stack": Stack,
    "environment": Environment,
    "tenant": Tenant,
    "route": Route,
    "host": Host,
}


@dataclass(frozen=True)
class Line:
    """One line of a chart: a label, where its values come from (a column of the
    object's samples, summed over its series; `counter`: drawn as a per-second rate),
    and `limit`: drawn dashed, as the ceiling the others run against."""

    label: str
    column: str
    counter: bool = False
    limit: bool = False


@dataclass(frozen=True)
class ChartSpec:
    key: str
    title: str
    unit: str  # percent, bytes, bytes_per_second, per_second, ms, count
    lines: tuple[Line, ...]


CONTAINER_CHARTS = (
    ChartSpec("cpu", "CPU", "percent", (Line("CPU", "cpu_percent"),)),
    ChartSpec(
        "memory",
        "Memory",
        "bytes",
        (Line("in use", "memory_bytes"), Line("limit", "memory_limit_bytes", limit=True)),
    ),
    ChartSpec(
        "network",
        "Network",
        "bytes_per_second",
        (Line("received", "net_rx_bytes", True), Line("sent", "net_tx_bytes", True)),
    ),
    ChartSpec(
        "block",
        "Block I/O",
        "bytes_per_second",
        (Line("read", "block_read_bytes", True), Line("written", "block_write_bytes", True)),
    ),
)
ROUTE_CHARTS = (
    ChartSpec(
        "requests",
        "Requests through the frontier",
        "per_second",
        (Line("requests", "requests", True), Line("errors (5xx)", "errors", True)),
    ),
    ChartSpec("latency", "Response time", "ms", (Line("average", "latency_ms"),)),
)
HOST_CHARTS = (
    ChartSpec("cpu", "CPU of Berth's containers", "percent", (Line("CPU", "cpu_percent"),)),
    ChartSpec("memory", "Memory of Berth's containers", "bytes", (Line("in use", "memory_bytes"),)),
    ChartSpec(
        "network",
        "Network",
        "bytes_per_second",
        (Line("received", "net_rx_rate"), Line("sent", "net_tx_rate")),
    ),
    ChartSpec("containers", "Containers", "count", (Line("running", "running"),)),
)


def parse_range(value: str | None) -> str:
    """A range name from RANGES (the default when none is given)."""
    name = (value or DEFAULT_RANGE).strip()
    if name not in RANGES:
        raise ValidationError({"range": f"Choose one of {', '.join(RANGES)}."})
    return name


def find_object(user: Any, kind: str, pk: Any) -> Model:
    """The object `kind`/`pk` if `user` may see it; Http404 otherwise (another tenant's
    looks like one that does not exist). Hosts: platform admins only."""
    model = KINDS.get(kind)
    if model is None or not str(pk).isdecimal():
        raise Http404("No such object.")
    if model is Host:
        if not is_platform_admin(user):
            raise Http404("No such object.")
        queryset = Host.objects.all()
    else:
        queryset = model.objects.visible_to(user)
    found = queryset.filter(pk=int(pk)).first()
    if found is None:
        raise Http404("No such object.")
    return found


def chart_data(user: Any, obj: Model, range_name: str, now: datetime | None = None) -> dict:
    """The charts of `obj` over the named range, ready for static/js/charts.js."""
    now = now or timezone.now()
    start = now - timedelta(seconds=RANGES[range_name])
    tier = tiers.choose_tier(tiers.configured(), start, now, now)
    visible = Series.objects.all() if isinstance(obj, Host) else Series.objects.visible_to(user)
    charts: list[dict] = []
    markers: list[float] = []
    if isinstance(obj, Host):
        charts += _charts(HOST_CHARTS, obj, Series.Kind.HOST, visible, start, now, tier)
        _host_limits(charts, obj)
    else:
        if not isinstance(obj, Route):
            found = _charts(CONTAINER_CHARTS, obj, Series.Kind.CONTAINER, visible, start, now,
                            tier, extra=("restarts",))  # fmt: skip
            restarts = found.pop()  # the extra column: restarts per row
            markers = [t for t, v in zip(restarts["times"], restarts["values"], strict=True) if v]
            _cpu_limit(found, obj)
            charts += found
        charts += _charts(ROUTE_CHARTS, obj, Series.Kind.ROUTE, visible, start, now, tier)
    return {
        "object": {"kind": kind_name(obj), "id": obj.pk, "name": str(obj)},
        "range": range_name,
        "start": start.timestamp(),
        "end": now.timestamp(),
        "step": tier.step,
        "charts": [c for c in charts if c.get("series")],
        "restarts": markers,
    }


def kind_name(obj: Model) -> str:
    return next(name for name, model in KINDS.items() if isinstance(obj, model))


def _charts(
    specs: tuple[ChartSpec, ...],
    obj: Model,
    kind: int,
    visible: Any,
    start: datetime,
    end: datetime,
    tier: tiers.Tier,
    extra: tuple[str, ...] = (),
) -> list[dict]:
    """Each chart of `specs` for `obj`, its lines on one time axis; charts with no
    sample at all are empty (left out). `extra` columns come last, one per dict."""
    lines = {line.column: line.counter for spec in specs for line in spec.lines}
    lines.update(dict.fromkeys(extra, False))
    points = _columns(obj, kind, visible, lines, start, end, tier)
    times = sorted({t for found in points.values() for t, _ in found})
    index = {t: i for i, t in enumerate(times)}
    epoch = [t.timestamp() for t in times]

    def aligned(column: str) -> list[float | None]:
        values: list[float | None] = [None] * len(times)
        for t, v in points.get(column, ()):
            values[index[t]] = round(v, 3)
        return values

    charts = []
    for spec in specs:
        series = [
            {"label": line.label, "limit": line.limit, "values": aligned(line.column)}
            for line in spec.lines
            if points.get(line.column)
        ]
        charts.append(
            {"key": spec.key, "title": spec.title, "unit": spec.unit, "times": epoch,
             "series": series}
        )  # fmt: skip
    for column in extra:
        charts.append({"key": column, "times": epoch, "values": aligned(column)})
    return charts


def _columns(
    obj: Model,
    kind: int,
    visible: Any,
    columns: dict[str, bool],
    start: datetime,
    end: datetime,
    tier: tiers.Tier,
) -> dict[str, list[tuple[datetime, float]]]:
    """column -> (time, value) summed over the object's series of `kind` (counters as
    per-second rates): two queries whatever the columns and the series."""
    from apps.monitoring.queries import series_of

    if isinstance(obj, Host) and kind != Series.Kind.HOST:
        return {}
    ids = list(series_of(obj, kind, visible).values_list("pk", flat=True))
    if not ids:
        return {}
    model = SAMPLE_MODELS[kind]
    names = [c for c in columns if hasattr(model, c)]
    begin = start - timedelta(seconds=tier.step)  # one row before: the first rate
    rows = (
        model.objects.filter(series_id__in=ids, tier=tier.index, at__gte=begin, at__lte=end)
        .order_by("series_id", "at")
        .values_list("series_id", "at", *names)
    )
    per_series: dict[str, dict[int, list]] = {name: defaultdict(list) for name in names}
    for sid, at, *values in rows:
        for name, value in zip(names, values, strict=True):
            if value is not None:
                per_series[name][sid].append((at, value))
    summed: dict[str, dict[datetime, float]] = {name: defaultdict(float) for name in names}
    for name in names:
        for found in per_series[name].values():
            for at, value in tiers.rates(found) if columns[name] else found:
                if at >= start:
                    summed[name][at] += value
    return {name: sorted(summed[name].items()) for name in names}


def _cpu_limit(charts: list[dict], obj: Model) -> None:
    """A CPU chart's limit line (100 = one CPU) from the services' limits as they are
    now: a container's service, a service (times its replicas), a stack when every
    service has one; none for an environment or a tenant, or when a service has none."""
    cpu = next((c for c in charts if c["key"] == "cpu" and c["series"]), None)
    if cpu is None:
        return
    limit = cpu_limit_percent(obj)
    if limit:
        cpu["series"].append(
            {"label": "limit (now)", "limit": True, "values": [limit] * len(cpu["times"])}
        )


def cpu_limit_percent(obj: Model) -> float | None:
    if isinstance(obj, Container):
        return _service_cpus(obj.stack, obj.service.name, 1)
    if isinstance(obj, Service):
        return _service_cpus(obj.stack, obj.name, obj.scale)
    if isinstance(obj, Stack):
        limits = [_service_cpus(obj, s.name, s.scale) for s in obj.services.all()]
        return sum(limits) if limits and all(limits) else None  # type: ignore[arg-type]
    return None


def _service_cpus(stack: Stack, name: str, replicas: int) -> float | None:
    revision = stack.current_revision
    if revision is None or not revision.spec:
        return None
    project = project_from_spec(revision.spec)
    if name not in project.services:
        return None
    cpus = service_resources(revision.spec, project, name).cpus
    return round(cpus * 100 * max(replicas, 1), 2) if cpus else None


def _host_limits(charts: list[dict], host: Host) -> None:
    """The host's size as the ceiling of its CPU and memory charts."""
    ceilings = {"cpu": (host.cpus or 0) * 100, "memory": host.memory_bytes or 0}
    for chart in charts:
        ceiling = ceilings.get(chart["key"])
        if ceiling and chart["series"]:
            chart["series"].append(
                {"label": "host", "limit": True, "values": [ceiling] * len(chart["times"])}
            )
