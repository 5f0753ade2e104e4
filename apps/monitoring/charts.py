"""What the portal's charts draw: an object's figures over a range, as plain JSON.

One object (a container, a service, a stack, an environment, the tenant, a route or a
host) and one range give a few charts (CPU and memory against their limits, network,
block I/O, requests and errors per second, latency), all on one time axis, with the
times the object's containers restarted as markers. Each sample table is read once per
object and range (`_columns`: the series ids, then one query summing the gauges and
one differentiating and summing the counters, in the database), from the tier the range
calls for, so a 90-day chart costs what a 1-hour one does, and a stack of 100 containers
sends back no more rows than one of a single container. Objects are found through
`visible_to`, as everywhere: another tenant's id is a 404, and host charts are for
platform admins only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Model, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

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
    ChartSpec(
        "disk",
        "Disk of the engine's data root",
        "bytes",
        (Line("used", "disk_used_bytes"), Line("usable size", "disk_usable_bytes", limit=True)),
    ),
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
    per-second rates). The database sums (and differentiates) the rows: what comes back
    is one row per time, whatever the number of series, in three queries."""
    from apps.monitoring.queries import series_of

    if isinstance(obj, Host) and kind != Series.Kind.HOST:
        return {}
    ids = list(series_of(obj, kind, visible).values_list("pk", flat=True))
    if not ids:
        return {}
    model = SAMPLE_MODELS[kind]
    names = [c for c in columns if hasattr(model, c)]
    gauges = [c for c in names if not columns[c]]
    counters = [c for c in names if columns[c]]
    found: dict[str, list[tuple[datetime, float]]] = {}
    if gauges:
        rows = (
            model.objects.filter(series_id__in=ids, tier=tier.index, at__gte=start, at__lte=end)
            .values("at")
            .annotate(**{f"sum_{c}": Sum(c) for c in gauges})
            .order_by("at")
        )
        for c in gauges:
            found[c] = [(r["at"], float(r[f"sum_{c}"])) for r in rows if r[f"sum_{c}"] is not None]
    if counters:
        found.update(_counter_rates(model, ids, tier, start, end, counters))
    return found


def _counter_rates(
    model: type[Model],
    ids: list[int],
    tier: tiers.Tier,
    start: datetime,
    end: datetime,
    columns: list[str],
) -> dict[str, list[tuple[datetime, float]]]:
    """Each counter column's per-second rate, per series between its consecutive rows
    (a drop is a restart from zero: the new value is what it added, as `tiers.rates`),
    summed at each time. One row before the range is read so its first rate is known."""
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor == "postgresql":
        seconds = "EXTRACT(EPOCH FROM (at - LAG(at) OVER w))"
    else:  # SQLite, the embedded default
        seconds = "ROUND((julianday(at) - julianday(LAG(at) OVER w)) * 86400.0, 3)"
    quoted = {c: connection.ops.quote_name(c) for c in columns}
    inner = ", ".join(f"{q} - LAG({q}) OVER w AS d_{c}, {q} AS v_{c}" for c, q in quoted.items())
    sums = ", ".join(
        f"SUM(CASE WHEN d_{c} >= 0 THEN d_{c} ELSE v_{c} END / secs) AS r_{c}" for c in columns
    )
    marks = ", ".join(["%s"] * len(ids))
    # Only names from the model (quoted) and placeholders are put in; values are params.
    sql = (
        f"SELECT at, {sums} FROM (SELECT at, {seconds} AS secs, {inner} FROM {table} "  # noqa: S608
        f"WHERE tier = %s AND at >= %s AND at <= %s AND series_id IN ({marks}) "
        "WINDOW w AS (PARTITION BY series_id ORDER BY at)) AS deltas "
        "WHERE secs > 0 AND at >= %s GROUP BY at ORDER BY at"
    )
    begin = start - timedelta(seconds=tier.step)
    params = [tier.index, *_db_times(begin, end), *ids, *_db_times(start)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found: dict[str, list[tuple[datetime, float]]] = {c: [] for c in columns}
    for at, *rates in rows:
        at = _as_datetime(at)
        for c, rate in zip(columns, rates, strict=True):
            if rate is not None:
                found[c].append((at, float(rate)))
    return found


def _db_times(*values: datetime) -> list[Any]:
    """Datetimes as this database's driver takes them in raw SQL."""
    return [connection.ops.adapt_datetimefield_value(v) for v in values]


def _as_datetime(value: Any) -> datetime:
    """A raw row's time (SQLite gives text) as an aware datetime."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
    parsed = parse_datetime(str(value))
    assert parsed is not None, value
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


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
