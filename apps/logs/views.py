"""The Logs page: search the current tenant's lines, follow them live, download them;
and the Retention page: how long each of the tenant's environments keeps them.

One filterset (`LogFilterSet`) for the page and the API. The page shows the newest
PAGE_LINES matches in time order; "Follow" polls the tail view every few seconds with
the largest id shown, and the tail appends what was stored since (htmx out-of-band).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers
from django.views.generic import TemplateView

from apps.core.generic import ObjectFormView
from apps.core.mixins import TenantScopedMixin
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.logs import pages, services
from apps.logs.api.views import download_response
from apps.logs.filters import LogFilterSet
from apps.logs.forms import RetentionForm
from apps.logs.models import LogLine
from apps.logs.services import EXPORT_FORMATS
from apps.tenants.models import Environment, Tenant

PAGE_LINES = 200
TAIL_SECONDS = 3
# What the page's form leaves to other parts of the page.
PAGE_PARAMS = ("cursor", "follow", "output")


class LogScopedView(TenantScopedMixin, TemplateView):
    """The current tenant's lines the user may read, narrowed by the GET form."""

    model = LogLine

    def filtered(self) -> LogFilterSet:
        lines = self.get_queryset()
        tenant = self.request.tenant
        lines = lines.filter(tenant=tenant) if tenant is not None else lines.none()
        return LogFilterSet(self.request.GET, lines, exclude=("tenant",))

    def query_string(self, *drop: str) -> str:
        query = self.request.GET.copy()
        for name in drop:
            query.pop(name, None)
        return query.urlencode()


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class LogListView(LogScopedView):
    """Search results, newest PAGE_LINES shown oldest first, with "Older" and "Follow"."""

    template_name = "logs/logs.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["logs/partials/_results.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        found = self.filtered()
        page = pages.Page([], None)
        if found.is_valid():
            cursor = self.request.GET.get("cursor")
            page = pages.newest_first(found.qs, cursor, PAGE_LINES)
        lines = list(reversed(page.lines))
        return super().get_context_data(
            filter_form=found.form,
            lines=lines,
            last_id=max((line.pk for line in lines), default=self.request.GET.get("after", 0)),
            older=page.next_cursor,
            follow=self.request.GET.get("follow") == "1",
            query_string=self.query_string(*PAGE_PARAMS, "after"),
            filtered=any(v for k, v in self.request.GET.items() if k not in PAGE_PARAMS),
            tail_seconds=TAIL_SECONDS,
            **kwargs,
        )


class LogTailView(LogScopedView):
    """Lines stored after `after`: rows appended to the page, and the next poll."""

    template_name = "logs/partials/_tail.html"

    def get_context_data(self, **kwargs):
        found = self.filtered()
        lines = pages.tail(found.qs, PAGE_LINES).lines if found.is_valid() else []
        after = self.request.GET.get("after") or "0"
        return super().get_context_data(
            lines=lines,
            last_id=lines[-1].pk if lines else after,
            query_string=self.query_string("after", *PAGE_PARAMS),
            tail_seconds=TAIL_SECONDS,
            **kwargs,
        )


class LogDownloadView(LogScopedView):
    """Every matching line of the current tenant, oldest first, as text or JSON lines."""

    def get(self, request, *args, **kwargs):
        output = request.GET.get("output") or "text"
        found = self.filtered()
        if output not in EXPORT_FORMATS or not found.is_valid():
            errors = found.errors if output in EXPORT_FORMATS else {"output": ["text or jsonl"]}
            text = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
            return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
        return download_response(request, found.qs, output)


# --- retention ------------------------------------------------------------------------------


def may_set_retention(user: Any, tenant: Tenant) -> bool:
    """Whether the page offers the form (`services.set_retention` checks again)."""
    try:
        require_role(user, tenant, Role.ADMIN)
    except PermissionDenied:
        return False
    return True


def retention_row(
    user: Any,
    retention: services.Retention,
    form: RetentionForm | None = None,
    editable: bool | None = None,
) -> dict[str, Any]:
    """One environment's row: its retention, and the form when the user may change it
    (`editable`, when the caller knows it already)."""
    if editable is None:
        editable = may_set_retention(user, retention.environment.tenant)
    if editable and form is None:
        form = RetentionForm(
            initial={"days": retention.days},
            message=services.days_message(user),
            auto_id=f"id_env{retention.environment.pk}_%s",
        )
    return {"retention": retention, "form": form if editable else None}


def retention_context(
    request, tenant: Tenant | None, bound: RetentionForm | None = None, bound_pk: int | None = None
) -> dict[str, Any]:
    """The page's rows (the environment `bound_pk` with the refused form `bound`)."""
    environments = Environment.objects.visible_to(request.user).select_related("tenant")
    environments = environments.filter(tenant=tenant) if tenant is not None else environments.none()
    can_edit = tenant is not None and may_set_retention(request.user, tenant)
    rows = [
        retention_row(request.user, r, bound if r.environment.pk == bound_pk else None, can_edit)
        for r in services.retentions(services.with_retention(environments).order_by("slug"))
    ]
    return {
        "tenant": tenant,
        "rows": rows,
        "can_edit": can_edit,
        "default_days": services.describe_default(),
        "max_days": services.max_days(request.user),
    }


class RetentionListView(TenantScopedMixin, TemplateView):
    """The current tenant's environments and the days each keeps its lines; a form per
    environment for owners and admins, read-only for members and viewers."""

    model = Environment
    template_name = "logs/retention.html"

    def get_context_data(self, **kwargs):
        context = retention_context(self.request, self.request.tenant)
        return super().get_context_data(**context, **kwargs)


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class RetentionEditView(TenantScopedMixin, ObjectFormView):
    """POST one environment's days (owners and admins): htmx swaps its row, a plain
    POST redirects to the page; a refused value is shown on the field."""

    model = Environment
    required_role = Role.ADMIN
    form_class = RetentionForm
    template_name = "logs/retention.html"
    http_method_names = ["post"]

    def get_queryset(self):
        return services.with_retention(super().get_queryset().select_related("tenant"))

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["message"] = services.days_message(self.request.user)
        kwargs["auto_id"] = f"id_env{self.object.pk}_%s"
        return kwargs

    def perform(self, form):
        retention = services.set_retention(
            self.request.user, self.object, form.cleaned_data["days"]
        )
        if self.request.headers.get("HX-Request"):
            row = retention_row(self.request.user, retention)
            return render(
                self.request, "logs/partials/_retention_row.html", {"row": row, "saved": True}
            )
        kept = services.describe(retention.days)
        messages.success(self.request, f"{self.object.slug} keeps its log lines: {kept}.")
        return redirect("logs:retention")

    def form_invalid(self, form):
        if self.request.headers.get("HX-Request"):
            retention = services.Retention(self.object, self.object.log_days)
            row = retention_row(self.request.user, retention, form)
            return render(self.request, "logs/partials/_retention_row.html", {"row": row})
        return super().form_invalid(form)

    def get_context_data(self, **kwargs):
        form = kwargs.pop("form", None)
        context = retention_context(self.request, self.object.tenant, form, self.object.pk)
        return {**kwargs, **context, "view": self}
