"""The dashboard, the sections still to come, the tenant switcher and the error pages."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts.models import ApiToken
from apps.activity.models import Event
from apps.core.tenancy import role_of
from apps.tenants.middleware import switch_context as use_context
from apps.tenants.models import Environment, Tenant

SECTIONS = {
    "security": (
        "Security",
        "Image scanning results, compose policy exceptions and the audit trail.",
    ),
}


def _dashboard_counts(request: HttpRequest) -> dict:
    """The few numbers the dashboard shows about the current tenant and the user."""
    tokens = ApiToken.objects.visible_to(request.user).filter(user=request.user)
    counts = {"tokens": tokens.usable().count()}
    tenant = request.tenant
    if tenant is not None:
        counts["members"] = tenant.memberships.count()
        counts["environments"] = tenant.environments.count()
        counts["invitations"] = tenant.invitations.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).count()
    return counts


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The user's home: current tenant, its environments, counts and recent activity."""
    events = Event.objects.visible_to(request.user).select_related("tenant")
    if request.tenant is not None:
        events = events.filter(tenant=request.tenant)
    tenant = request.tenant
    context = {
        "recent_events": events[:8],
        "counts": _dashboard_counts(request),
        "environments": tenant.environments.all() if tenant else [],
        "my_role": role_of(request.user, tenant) if tenant else None,
        "sections": [(name, title, text) for name, (title, text) in SECTIONS.items()],
    }
    return render(request, "portal/dashboard.html", context)


@login_required
def section(request: HttpRequest, section: str) -> HttpResponse:
    """A section that later issues fill in; it says what will come there."""
    title, description = SECTIONS[section]
    return render(
        request,
        "portal/section.html",
        {"section": section, "title": title, "description": description},
    )


@login_required
@require_POST
def switch_context(request: HttpRequest) -> HttpResponse:
    """Choose the current tenant and environment among the user's own.

    Both come as a primary key (`tenant`, `environment`: the short lists' selects) or as
    text typed into the long lists' search boxes (`tenant_search`, `environment_search`):
    a slug or a name, or a part of one that only one of them contains."""
    tenants = Tenant.objects.visible_to(request.user)
    tenant = _chosen(request, tenants, "tenant", "tenant")
    if tenant is not None:
        # Another tenant's environment (the one still shown when the tenant changed) is
        # no choice: that tenant opens in its first environment.
        same = tenant == request.tenant
        envs = Environment.objects.filter(tenant=tenant)
        env = _chosen(request, envs, "environment", "environment" if same else "")
        if env is None and same:
            env = request.environment  # a search that found none changes nothing
        use_context(request.session, tenant, env)
    target = request.POST.get("next") or reverse("portal:dashboard")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("portal:dashboard")
    if request.headers.get("HX-Request"):
        return HttpResponse(status=204, headers={"HX-Redirect": target})
    return HttpResponseRedirect(target)


def _chosen(request: HttpRequest, queryset: QuerySet, key: str, noun: str) -> Any:
    """The object named by POST `<key>` (a pk) or `<key>_search` (text), else None; a
    search that finds none or several says so when `noun` is given."""
    text = request.POST.get(f"{key}_search", "").strip()[:100]
    if not text:
        pk = request.POST.get(key, "")
        return queryset.filter(pk=pk).first() if pk.isdecimal() else None
    found = queryset.filter(slug=text).first() or queryset.filter(name__iexact=text).first()
    if found is not None:
        return found
    matches = list(queryset.filter(Q(slug__icontains=text) | Q(name__icontains=text))[:2])
    if len(matches) == 1:
        return matches[0]
    if noun:
        problem = "several match it; pick one in the list" if matches else "none matches it"
        messages.error(request, f"No {noun} switched to “{text}”: {problem}.")
    return None


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else ""
    return render(request, "errors/403.html", {"message": message}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered without the request context: whatever broke may be in a context processor."""
    return HttpResponse(loader.get_template("errors/500.html").render(), status=500)
