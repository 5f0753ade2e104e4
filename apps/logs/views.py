"""The Logs page: search the current tenant's lines, follow them live, download them.

One filterset (`LogFilterSet`) for the page and the API. The page shows the newest
PAGE_LINES matches in time order; "Follow" polls the tail view every few seconds with
the largest id shown, and the tail appends what was stored since (htmx out-of-band).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers
from django.views.generic import TemplateView

from apps.core.mixins import TenantScopedMixin
from apps.logs import pages
from apps.logs.api.views import download_response
from apps.logs.filters import LogFilterSet
from apps.logs.models import LogLine
from apps.logs.services import EXPORT_FORMATS

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
