"""What a service's stored metrics say, in the unit of its autoscaling target.

Read through apps/monitoring's `queries` (the collector's rows, never the engine), a
fixed number of queries per service whatever its replicas: per container series for CPU
and memory (each container's figure against its own limit, so
the mean over containers is meaningful), the routes' summed request rate for requests.
The tenant's own series only, as the tenancy rule wants even for Berth's own work.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from apps.autoscaling.models import Autoscaler
from apps.autoscaling.planning import per_container
from apps.deployments.models import Service
from apps.deployments.resources import ContainerResources, service_resources
from apps.deployments.spec import project_from_spec
from apps.monitoring import queries
from apps.monitoring.models import Series


def observe(
    scaler: Autoscaler, service: Service, start: datetime, now: datetime
) -> tuple[float | None, int]:
    """(The per-container figure or None, the sampling times it rests on) over
    [start, now], in the unit of the service's target."""
    if scaler.metric == Autoscaler.Metric.REQUESTS:
        return _requests(service, start, now)
    mine = Series.objects.filter(tenant_id=service.stack.tenant_id, last_seen_at__gte=start)
    points: dict[datetime, list[float]] = defaultdict(list)
    if scaler.metric == Autoscaler.Metric.CPU:
        cpus = cpu_limit(service)
        if not cpus:
            return None, 0
        read = queries.per_series(service, ["cpu_percent"], start, now, queryset=mine, now=now)
        for one in read.values():
            for at, value in one["cpu_percent"]:
                points[at].append(value / cpus)
    else:
        read = queries.per_series(
            service, ["memory_bytes", "memory_limit_bytes"], start, now, queryset=mine, now=now
        )
        for one in read.values():
            used = dict(one["memory_bytes"])
            for at, limit in one["memory_limit_bytes"]:
                if limit and at in used:
                    points[at].append(used[at] * 100.0 / limit)
    return per_container(points)


def _requests(service: Service, start: datetime, now: datetime) -> tuple[float | None, int]:
    """Requests per second through the frontier, summed over the service's routes,
    shared among its replicas."""
    # The series of the routes that point at the service now (a route's own labels
    # say where it pointed when first seen), read together and summed at each time.
    tenant = service.stack.tenant
    routed = Series.objects.filter(tenant=tenant, route_pk__in=service.routes.values("pk"))
    total = dict(queries.series(tenant, "requests_rate", start, now, queryset=routed, now=now))
    if not total or service.scale <= 0:
        return None, 0
    mean = sum(total.values()) / len(total)
    return mean / service.scale, len(total)


def limits(service: Service) -> ContainerResources:
    """The per-container limits the service runs with (resources.service_resources)."""
    spec = service.stack.current_revision.spec
    return service_resources(spec, project_from_spec(spec), service.name)


def cpu_limit(service: Service) -> float | None:
    """CPUs per container (None: no limit), 100 % of which is the CPU target's scale:
    the collector's cpu_percent is of one CPU."""
    return limits(service).cpus
