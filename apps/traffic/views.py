"""The frontier's page for platform operators: is it running, what did the last apply
do, which configuration was refused and why, and what HAProxy says about every route's
servers. Errors of the frontier are platform-wide, so only operators see this page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from apps.core.mixins import PlatformAdminMixin
from apps.deployments.models import Route
from apps.traffic import frontier, process, runtime


class FrontierStatusView(PlatformAdminMixin, TemplateView):
    """status.json and the backends of every route, read at each request."""

    template_name = "traffic/frontier_status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        running = process.is_running(frontier.directory())
        routes = list(
            Route.objects.select_related("stack", "service", "tenant").order_by("hostname", "path")
        )
        servers = runtime.backend_status([r.pk for r in routes]) if running else {}
        for route in routes:
            route.backends = servers.get(route.pk, [])
        status = frontier.read_status()
        context.update(
            running=running,
            status=status,
            last_error=status.get("last_error") or {},
            routes=routes,
            directory=frontier.directory(),
        )
        return context


class FrontierApplyView(PlatformAdminMixin, View):
    """Render, check and reload now (after fixing what made the last apply fail)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        result = frontier.apply(f"applied by {request.user.get_username()} on the frontier page")
        if result.ok:
            verb = "reloaded" if result.reloaded else "up to date"
            messages.success(request, f"Frontier {verb}: {result.routes} routes.")
        else:
            messages.error(request, "The new configuration was refused; the previous one serves.")
        return HttpResponseRedirect(reverse("traffic:frontier"))
