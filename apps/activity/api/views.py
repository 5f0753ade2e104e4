"""The activity log over the API: read-only, newest first, filterable."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from apps.activity.api.serializers import EventFilterSerializer, EventSerializer
from apps.activity.models import Event
from apps.core.api import TenantScopedViewSet

# Pagination parameters pass through; every other query parameter must be a filter.
PAGINATION_PARAMS = {"limit", "offset", "format"}


@extend_schema_view(list=extend_schema(parameters=[EventFilterSerializer]))
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Events of your tenants; platform events (no tenant) for platform admins only."""

    model = Event
    serializer_class = EventSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("tenant").order_by("-created_at", "-id")

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        params = {
            key: value
            for key, value in self.request.query_params.items()
            if key not in PAGINATION_PARAMS
        }
        filters = EventFilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        return filters.filter(queryset)
