"""The stack page's route table with each backend's health, asked from HAProxy.

Lives in the frontier's app because the deployments layer (where the stack page is)
cannot import the frontier; the fragment reuses the stack page's own partial
(templates/deployments/partials/_routes_table.html) and its URL sits under the stack
(/stacks/<pk>/routes/health/). The stack page loads it with htmx and refreshes it.
"""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers

from apps.core.generic import ObjectDetailView
from apps.core.roles import Role
from apps.deployments.models import Route, Stack
from apps.deployments.views import StackScopedMixin, can, routes_context
from apps.traffic.models import Certificate
from apps.traffic.runtime import backend_status


def route_health(stack: Stack) -> tuple[dict[int, list[dict]], str]:
    """route id -> backends (UP/DOWN/MAINT/DRAIN per container) from the frontier's
    runtime API, each labelled with its container's name; and why not, when the frontier
    does not answer."""
    route_ids = list(stack.routes.values_list("pk", flat=True))
    if not route_ids:
        return {}, ""
    status = backend_status(route_ids)
    if not status:
        return {}, "the frontier does not answer."
    names = dict(stack.containers.values_list("pk", "name"))
    return {
        route_id: [_labelled(backend, names) for backend in backends]
        for route_id, backends in status.items()
    }, ""


def _labelled(backend: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    return {**backend, "label": names.get(backend.get("container_id"), backend.get("server"))}


def mark_missing_certificates(user: Any, stack: Stack, routes: list[Route]) -> None:
    """Set `certificate_missing` on the routes whose TLS is "uploaded" and whose host
    name has no certificate of the stack's tenant yet: the table links them to the
    certificates page, the only place one is uploaded in the portal."""
    hostnames = {r.hostname for r in routes if r.tls == Route.Tls.UPLOADED}
    have = set()
    if hostnames:
        have = set(
            Certificate.objects.visible_to(user)
            .filter(tenant_id=stack.tenant_id, hostname__in=hostnames)
            .values_list("hostname", flat=True)
        )
    for route in routes:
        route.certificate_missing = route.tls == Route.Tls.UPLOADED and route.hostname not in have


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class StackRouteHealthView(StackScopedMixin, ObjectDetailView):
    """The route table of a stack with its backends' health (viewers may read it)."""

    template_name = "deployments/partials/_routes_table.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        stack = self.object
        health, error = route_health(stack)
        context.update(routes_context(stack, health=health))
        mark_missing_certificates(self.request.user, stack, context["routes"])
        context.update(
            stack=stack,
            health_error=error,
            can_act=can(self.request.user, stack.tenant, Role.MEMBER),
        )
        return context
