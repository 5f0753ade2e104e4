"""The Monitoring pages: an object's charts over a chosen range (the tenant's by
default), and the JSON the charts draw (apps/monitoring/charts.py).

`?of=<kind>:<id>` picks the object (a container, service, stack, environment, route, the
tenant, or a host for platform admins); another tenant's is a 404, as everywhere.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from apps.core.tenancy import is_platform_admin
from apps.deployments.models import Container, Route, Service, Stack
from apps.hosts.models import Host
from apps.monitoring import charts
from apps.tenants.models import Environment, Tenant


class ChartDataView(LoginRequiredMixin, View):
    """The charts of one object (`model`, one URL per kind): `?range=` one of
    charts.RANGES (a 400 naming `range` otherwise); another tenant's object is a 404."""

    model: type[Model]
    kind = ""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        try:
            range_name = charts.parse_range(request.GET.get("range"))
        except ValidationError as exc:
            return JsonResponse(exc.message_dict, status=400)
        obj = charts.find_object(request.user, self.kind, pk)
        return JsonResponse(charts.chart_data(request.user, obj, range_name))


#: kind -> its chart data view (the isolation walk fills each URL with tenant A's object).
CHART_VIEWS = {
    kind: type(f"{model.__name__}ChartDataView", (ChartDataView,), {"model": model, "kind": kind})
    for kind, model in charts.KINDS.items()
}


def chart_url(obj: Model) -> str:
    return reverse(f"portal:monitoring_chart_{charts.kind_name(obj)}", args=[obj.pk])


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """The charts of `?of=` (the current tenant's when absent) and what lies under it."""
    of = request.GET.get("of", "")
    obj: Model | None
    if of:
        kind, _, pk = of.partition(":")
        obj = charts.find_object(request.user, kind, pk)
    else:
        obj = request.tenant
    try:
        range_name = charts.parse_range(request.GET.get("range"))
    except ValidationError:
        range_name = charts.DEFAULT_RANGE
    context = {
        "object": obj,
        "kind": charts.kind_name(obj) if obj is not None else "",
        "range": range_name,
        "ranges": list(charts.RANGES),
        "trail": _trail(obj) if obj is not None else [],
        "children": _children(request, obj) if obj is not None else [],
        "unmeasured": unmeasured(obj) if obj is not None else [],
        "data_url": chart_url(obj) if obj is not None else "",
    }
    return render(request, "monitoring/overview.html", context)


def link(obj: Model) -> str:
    return f"{reverse('portal:monitoring')}?of={charts.kind_name(obj)}:{obj.pk}"


def _trail(obj: Model) -> list[tuple[str, str]]:
    """(label, link) from the tenant down to `obj`, for the breadcrumb."""
    chain: list[Model] = []
    current: Model | None = obj
    while current is not None:
        chain.append(current)
        current = _parent(current)
    return [(f"{charts.kind_name(o)} {o}", link(o)) for o in reversed(chain)]


def _parent(obj: Model) -> Model | None:
    if isinstance(obj, Container):
        return obj.service
    if isinstance(obj, Service | Route):
        return obj.stack
    if isinstance(obj, Stack):
        return obj.environment
    if isinstance(obj, Environment):
        return obj.tenant
    return None


def _children(request: HttpRequest, obj: Model) -> list[tuple[str, str, str]]:
    """(kind, name, link) of what `obj` is made of: a tenant's environments and stacks,
    a stack's services and routes, a service's containers; hosts for an admin's tenant
    page."""
    found: list[Model] = []
    if isinstance(obj, Tenant):
        found += list(obj.environments.order_by("name"))
        found += list(Stack.objects.visible_to(request.user).filter(tenant=obj).order_by("name"))
        if is_platform_admin(request.user):
            found += list(Host.objects.order_by("name"))
    elif isinstance(obj, Environment):
        found += list(Stack.objects.visible_to(request.user).filter(environment=obj))
    elif isinstance(obj, Stack):
        found += list(obj.services.order_by("name"))
        found += list(Route.objects.visible_to(request.user).filter(stack=obj))
    elif isinstance(obj, Service):
        found += list(obj.containers.order_by("name"))
    return [(charts.kind_name(o), str(o), link(o)) for o in found]


def unmeasured(obj: Model) -> list[str]:
    """What of `obj` the metrics collector does not measure, and why: a Swarm cluster
    host's nodes whose engine Berth does not reach (`SwarmNode.engine_gap`, for platform
    admins: it may name an endpoint), a stack's, service's or task's tasks on such nodes
    (for its tenant, naming the node only)."""
    if isinstance(obj, Host):
        if not obj.is_swarm:
            return []
        nodes = obj.swarm_nodes.filter(gone_at__isnull=True)
        return [gap for gap in (n.engine_gap for n in nodes) if gap]
    if isinstance(obj, Container):
        tasks = [obj]
    elif isinstance(obj, Service | Stack):
        tasks = list(obj.containers.select_related("node"))
    else:
        return []
    return [
        f"{task.name}: runs on node {task.node.name}, whose engine Berth does not reach"
        for task in sorted(tasks, key=lambda t: t.name)
        if task.node is not None and task.node.engine_gap
    ]
