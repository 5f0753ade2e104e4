"""What each enabled rule sees now: per rule, its subjects with a value and whether the
condition holds. One observer per kind, each a fixed number of queries whatever the
number of rules, containers, routes or samples (the evaluation test counts them).

Threshold rules read the newest raw rows of apps.monitoring (its `latest`, and the
counters' rates with its `tiers.rates`); restarts and flapping read the raw rows of
their window; host, registry, hot image, certificate and disk rules read the rows those apps
keep (Host.state, TenantRegistryQuota, the registry's `registry.pull_alert` events,
Certificate.not_after, monitoring's HostDisk from the disk probe).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from apps.activity.models import Event
from apps.alerts.models import AlertRule
from apps.alerts.rules import METRICS, SYMBOLS, changes, holds
from apps.deployments.models import Route
from apps.hosts.models import Host
from apps.monitoring import tiers
from apps.monitoring.collector import interval
from apps.monitoring.disk import fresh_disks
from apps.monitoring.models import ContainerSample, HostDisk, RouteSample, Series
from apps.monitoring.queries import latest
from apps.registry.models import TenantRegistryQuota
from apps.tenants.models import Environment
from apps.traffic.models import Certificate


@dataclass(frozen=True)
class Observation:
    """One subject of one rule as a pass sees it."""

    subject: str
    value: float | None
    condition: bool
    message: str


Seen = dict[int, dict[str, Observation]]  # rule pk -> subject key -> observation


def observe(rules: list[AlertRule], now: datetime) -> Seen:
    """Every rule's observations, kind by kind."""
    seen: Seen = {rule.pk: {} for rule in rules}
    by_kind: dict[str, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        by_kind[rule.kind].append(rule)
    for kind, observer in OBSERVERS.items():
        if by_kind.get(kind):
            observer(by_kind[kind], now, seen)
    return seen


def _tenants(rules: Iterable[AlertRule]) -> set[int]:
    return {rule.tenant_id for rule in rules}


def _by_tenant(rules: Iterable[AlertRule]) -> dict[int, list[AlertRule]]:
    """Rules per tenant: a row is matched only against its own tenant's rules, so the
    work grows with rows plus rules, not with their product."""
    found: dict[int, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        found[rule.tenant_id].append(rule)
    return found


def _in_scope(rule: AlertRule, series: Series) -> bool:
    """A series belongs to a rule: same tenant, and its environment, stack and service
    when the rule names them."""
    return (
        series.tenant_id == rule.tenant_id
        and (rule.environment_id is None or series.environment_pk == rule.environment_id)
        and (rule.stack_id is None or series.stack_pk == rule.stack_id)
        and (not rule.service_name or series.service_name == rule.service_name)
    )


def _label(series: Series) -> str:
    where = "/".join(p for p in (series.stack_name, series.service_name) if p)
    return f"{series.name} ({where})" if where else series.name


def _threshold_message(rule: AlertRule, value: float | None, unit: str) -> str:
    if value is None:
        return f"{rule.metric} not measured"
    return f"{rule.metric} {value:.4g}{unit} {SYMBOLS[rule.comparison]} {rule.threshold:g}{unit}"


# --- metric thresholds ---------------------------------------------------------------------------


def _container_value(metric: str, row: ContainerSample) -> float | None:
    if metric == "cpu_percent":
        return row.cpu_percent
    if metric == "memory_bytes":
        return float(row.memory_bytes)
    if metric == "memory_percent" and row.memory_limit_bytes:
        return row.memory_bytes * 100.0 / row.memory_limit_bytes
    return None


def _route_values(rows: list[RouteSample]) -> dict[str, float | None]:
    """A route's figures from its newest rows: rates from the last two (counters)."""
    newest = rows[-1]
    values: dict[str, float | None] = {
        "latency_ms": newest.latency_ms,
        "requests_rate": None,
        "errors_rate": None,
        "error_percent": None,
    }
    if len(rows) >= 2:
        requests = tiers.rates([(r.at, r.requests) for r in rows[-2:]])
        errors = tiers.rates([(r.at, r.errors) for r in rows[-2:]])
        if requests and errors:
            values["requests_rate"], values["errors_rate"] = requests[-1][1], errors[-1][1]
            if requests[-1][1] > 0:
                values["error_percent"] = errors[-1][1] * 100.0 / requests[-1][1]
    return values


def _recent_route_rows(tenant_ids: set[int], now: datetime) -> list[tuple[Series, list]]:
    """Each recent route series with its raw rows of the last three intervals (two
    queries): the newest two give the rates."""
    recent = now - timedelta(seconds=interval() * 3)
    found = {
        s.pk: s
        for s in Series.objects.filter(
            kind=Series.Kind.ROUTE, tenant_id__in=tenant_ids, last_seen_at__gte=recent
        )
    }
    rows: dict[int, list[RouteSample]] = defaultdict(list)
    for row in RouteSample.objects.filter(
        tier=0, series_id__in=list(found), at__gte=recent - timedelta(seconds=interval())
    ).order_by("series_id", "at"):
        rows[row.series_id].append(row)
    return [(found[sid], series_rows) for sid, series_rows in rows.items()]


def observe_metrics(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """Thresholds on each container's newest raw row (monitoring's `latest`) and each
    route's two newest (rates of its counters)."""
    container_rules = _by_tenant(r for r in rules if METRICS[r.metric].subject == "container")
    route_rules = _by_tenant(r for r in rules if METRICS[r.metric].subject == "route")
    if container_rules:
        queryset = Series.objects.filter(tenant_id__in=list(container_rules))
        for series, row in latest(queryset, Series.Kind.CONTAINER, now=now):
            for rule in container_rules[series.tenant_id]:
                if _in_scope(rule, series):
                    value = _container_value(rule.metric, row)
                    seen[rule.pk][series.key] = Observation(
                        _label(series),
                        value,
                        holds(rule.comparison, value, rule.threshold),
                        _threshold_message(rule, value, METRICS[rule.metric].unit),
                    )
    if route_rules:
        for series, rows in _recent_route_rows(set(route_rules), now):
            values = _route_values(rows)
            for rule in route_rules[series.tenant_id]:
                if _in_scope(rule, series):
                    value = values.get(rule.metric)
                    seen[rule.pk][series.key] = Observation(
                        series.name,
                        value,
                        holds(rule.comparison, value, rule.threshold),
                        _threshold_message(rule, value, METRICS[rule.metric].unit),
                    )


# --- restarts and health flapping ----------------------------------------------------------------


def observe_container_history(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """Restarts (added up) and health changes (counted) per container over each rule's
    window, from one read of the raw rows of the longest window."""
    longest = max(rule.window_seconds for rule in rules)
    since = now - timedelta(seconds=longest)
    found = {
        s.pk: s
        for s in Series.objects.filter(
            kind=Series.Kind.CONTAINER, tenant_id__in=_tenants(rules), last_seen_at__gte=since
        )
    }
    history: dict[int, list[tuple[datetime, int, int]]] = defaultdict(list)
    for sid, at, restarts, health in (
        ContainerSample.objects.filter(tier=0, series_id__in=list(found), at__gte=since)
        .order_by("series_id", "at")
        .values_list("series_id", "at", "restarts", "health")
    ):
        history[sid].append((at, restarts, health))
    per_tenant = _by_tenant(rules)
    for sid, series in found.items():
        for rule in per_tenant[series.tenant_id]:
            if not _in_scope(rule, series):
                continue
            start = now - timedelta(seconds=rule.window_seconds)
            rows = [row for row in history.get(sid, ()) if row[0] >= start]
            if rule.kind == AlertRule.Kind.RESTARTS:
                value = float(sum(row[1] for row in rows))
                what = "restarts"
            else:
                value = float(changes([row[2] for row in rows]))
                what = "health changes"
            seen[rule.pk][series.key] = Observation(
                _label(series),
                value,
                value >= rule.threshold,
                f"{value:g} {what} in {rule.window_seconds} s (alert at {rule.threshold:g})",
            )


# --- hosts, registry, hot images, certificates --------------------------------------------------


def observe_hosts(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """The hosts the rule's environments use (a tenant sees only those): down when the
    heartbeat marked them unreachable, or when no heartbeat has reached them for three
    heartbeat intervals (the heartbeat itself may be what stopped)."""
    stale = now - timedelta(seconds=settings.BERTH_HEARTBEAT_SECONDS * 3)
    links = Environment.hosts.through.objects.filter(
        environment__tenant_id__in=_tenants(rules)
    ).values_list(
        "environment_id",
        "environment__tenant_id",
        "host_id",
        "host__name",
        "host__state",
        "host__last_seen_at",
    )
    for env_id, tenant_id, host_id, name, state, last_seen in links:
        silent = last_seen is not None and last_seen < stale
        down = state == Host.State.UNREACHABLE or silent
        why = f"host {name} is {state}"
        if silent:
            why += f", no heartbeat since {last_seen:%Y-%m-%d %H:%M:%S} UTC"
        for rule in rules:
            if rule.tenant_id != tenant_id or rule.environment_id not in (None, env_id):
                continue
            seen[rule.pk][f"host:{host_id}"] = Observation(name, 1.0 if down else 0.0, down, why)


def observe_disks(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """The data-root disk of the hosts the rule's environments use (as for unreachable
    hosts): the higher of the percent of space and of inodes used, from the disk probe's
    newest figures; figures older than `fresh_seconds` are not judged (an open alert on
    them resolves as no longer measured; an unreachable host has its own rule)."""
    links = list(
        Environment.hosts.through.objects.filter(
            environment__tenant_id__in=_tenants(rules)
        ).values_list("environment_id", "environment__tenant_id", "host_id")
    )
    disks = {
        d.host_id: d for d in fresh_disks({link[2] for link in links}, now).select_related("host")
    }
    for env_id, tenant_id, host_id in links:
        disk = disks.get(host_id)
        if disk is None:
            continue
        value = disk_percent(disk)
        for rule in rules:
            if rule.tenant_id == tenant_id and rule.environment_id in (None, env_id):
                seen[rule.pk][f"disk:{host_id}"] = Observation(
                    disk.host.name,
                    round(value, 2),
                    value >= rule.threshold,
                    _disk_message(disk, rule),
                )


def disk_percent(disk: HostDisk) -> float:
    """What a disk rule compares: space or inodes, whichever is fuller."""
    return max(disk.used_percent, disk.inodes_used_percent or 0.0)


def _disk_message(disk: HostDisk, rule: AlertRule) -> str:
    gib = 1024**3
    text = (
        f"data root {disk.data_root} of host {disk.host.name}: {disk.used_percent:.1f}% used, "
        f"{disk.free_bytes / gib:.1f} GiB free of {disk.total_bytes / gib:.1f} GiB"
    )
    if disk.inodes_used_percent is not None:
        text += f", inodes {disk.inodes_used_percent:.1f}% used"
    return text + f" (alert at {rule.threshold:g}%)"


def observe_registry(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    for row in TenantRegistryQuota.objects.filter(tenant_id__in=_tenants(rules), quota_bytes__gt=0):
        percent = row.used_bytes * 100.0 / row.quota_bytes
        for rule in rules:
            if rule.tenant_id == row.tenant_id:
                seen[rule.pk]["registry"] = Observation(
                    "registry storage",
                    percent,
                    percent >= rule.threshold,
                    f"{percent:.1f}% of the registry quota used (alert at {rule.threshold:g}%)",
                )


def observe_hot_images(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """The registry's own detection (`registry.pull_alert` events, raised when a
    repository's pulls of the day pass the tenant's threshold), within the window."""
    since = now - timedelta(seconds=max(rule.window_seconds for rule in rules))
    events = Event.objects.filter(
        action="registry.pull_alert", tenant_id__in=_tenants(rules), created_at__gte=since
    ).values_list("tenant_id", "object_id", "object_repr", "created_at", "message", "data")
    for tenant_id, object_id, name, at, message, data in events.order_by("created_at"):
        for rule in rules:
            if rule.tenant_id == tenant_id and at >= now - timedelta(seconds=rule.window_seconds):
                pulls = (data or {}).get("pulls")
                seen[rule.pk][f"repository:{object_id}"] = Observation(
                    name, float(pulls) if pulls is not None else None, True, message[:500]
                )


def observe_certificates(rules: list[AlertRule], now: datetime, seen: Seen) -> None:
    """Each certificate of the tenant (of its routes in the rule's environment or stack,
    when the rule names one): days left against the threshold."""
    tenant_ids = _tenants(rules)
    scoped = [r for r in rules if r.environment_id or r.stack_id]
    routed: set[tuple[str, int | None, int]] = set()
    if scoped:
        routed = set(
            Route.objects.filter(tenant_id__in=tenant_ids).values_list(
                "hostname", "stack__environment_id", "stack_id"
            )
        )
    certificates = Certificate.objects.filter(
        tenant_id__in=tenant_ids, not_after__isnull=False
    ).values_list("tenant_id", "hostname", "not_after")
    for tenant_id, hostname, not_after in certificates:
        days = (not_after - now).total_seconds() / 86400
        for rule in rules:
            if rule.tenant_id != tenant_id:
                continue
            if (rule.environment_id or rule.stack_id) and not any(
                host == hostname
                and rule.environment_id in (None, env)
                and rule.stack_id in (None, stack)
                for host, env, stack in routed
            ):
                continue
            ends = "expired" if days < 0 else f"ends in {days:.1f} days"
            seen[rule.pk][f"certificate:{hostname}"] = Observation(
                hostname,
                round(days, 2),
                days <= rule.threshold,
                f"certificate of {hostname} {ends}",
            )


OBSERVERS = {
    AlertRule.Kind.METRIC: observe_metrics,
    AlertRule.Kind.RESTARTS: observe_container_history,
    AlertRule.Kind.FLAPPING: observe_container_history,
    AlertRule.Kind.HOST_UNREACHABLE: observe_hosts,
    AlertRule.Kind.REGISTRY_QUOTA: observe_registry,
    AlertRule.Kind.HOT_IMAGE: observe_hot_images,
    AlertRule.Kind.CERTIFICATE: observe_certificates,
    AlertRule.Kind.DISK_FULL: observe_disks,
}
