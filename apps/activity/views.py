"""The activity log: the current tenant's events, and all events for platform admins."""

from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.vary import vary_on_headers
from django.views.generic import ListView

from apps.activity.filters import EventFilterSet
from apps.activity.models import Event
from apps.core.mixins import PlatformAdminMixin, TenantScopedMixin
from apps.core.pagination import UncountedPaginator


@method_decorator(vary_on_headers("HX-Request"), name="dispatch")
class EventListView(TenantScopedMixin, ListView):
    """Events of the current tenant, filtered by the GET form, newest first.

    Under htmx (the filter form changes) only the table partial is sent back.
    """

    model = Event
    template_name = "activity/event_list.html"
    context_object_name = "events"
    paginate_by = 25
    paginator_class = UncountedPaginator  # a tenant may have millions of events
    all_tenants = False

    def base_queryset(self):
        events = super().get_queryset().select_related("tenant")
        if self.all_tenants:
            return events
        tenant = self.request.tenant
        return events.filter(tenant=tenant) if tenant is not None else events.none()

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["activity/partials/_events.html"]
        return [self.template_name]

    def get_queryset(self):
        # One tenant's page has no use for the tenant filter; the operators' page has.
        exclude = () if self.all_tenants else ("tenant",)
        self.filter = EventFilterSet(self.request.GET, self.base_queryset(), exclude=exclude)
        return self.filter.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        context.update(
            filter_form=self.filter.form,
            query_string=query.urlencode(),
            all_tenants=self.all_tenants,
            filtered=any(v for k, v in self.request.GET.items() if k != "page"),
        )
        return context


class AllEventListView(PlatformAdminMixin, EventListView):
    """Every tenant's events and the platform's own (hosts, users), for operators."""

    all_tenants = True
