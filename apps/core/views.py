"""The dashboard, the sections still to come, the tenant switcher and the error pages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.activity.models import Event
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from apps.tenants.models import Environment, Tenant

SECTIONS = {
    "catalog": (
        "Catalog",
        "Templates of microservices, published by the platform or shared by tenants, to answer a few questions and deploy.",
    ),
    "stacks": (
        "Stacks",
        "Your deployed applications: services, containers, health, logs, shells, scaling, upgrades and rollbacks.",
    ),
    "registry": (
        "Registry",
        "A private image registry per tenant: push with the stock docker client, browse tags, robot accounts for CI.",
    ),
    "monitoring": ("Monitoring", "Metrics, alerts and autoscaling of your services."),
    "security": (
        "Security",
        "Image scanning results, compose policy exceptions and the audit trail.",
    ),
}


@login_required
def dashboard(request):
    events = Event.objects.visible_to(request.user)
    if request.tenant is not None:
        events = events.filter(tenant=request.tenant)
    return render(request, "core/dashboard.html", {"recent_events": events[:10]})


@login_required
def section(request, section: str):
    title, description = SECTIONS[section]
    return render(
        request,
        "core/section.html",
        {"section": section, "title": title, "description": description},
    )


@login_required
@require_POST
def switch_context(request):
    """Choose the current tenant and environment among the user's own."""
    tenant = Tenant.objects.visible_to(request.user).filter(pk=request.POST.get("tenant")).first()
    if tenant is not None:
        request.session[SESSION_TENANT] = tenant.pk
        env = Environment.objects.filter(tenant=tenant, pk=request.POST.get("environment")).first()
        request.session[SESSION_ENVIRONMENT] = env.pk if env else None
    target = request.POST.get("next") or reverse("core:dashboard")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("core:dashboard")
    return HttpResponseRedirect(target)


def permission_denied(request, exception=None):
    return render(request, "errors/403.html", status=403)


def page_not_found(request, exception=None):
    return render(request, "errors/404.html", status=404)


def server_error(request):
    return render(request, "errors/500.html", status=500)
