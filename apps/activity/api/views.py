"""The activity log over the API: read-only, newest first, filterable."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins

from apps.activity.api.serializers import EventSerializer
from apps.activity.filters import EventFilterSet
from apps.activity.models import Event
from apps.core.api import TenantScopedViewSet
from apps.core.pagination import CappedCountPagination

# Pagination parameters pass through; every other query parameter must be a filter.
PAGINATION_PARAMS = {"limit", "offset", "format"}

_INSTANT = {
    "oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}


def filter_parameters() -> list[OpenApiParameter]:
    """The schema of the query parameters, read from the filter the pages use too."""
    parameters = []
    for name, filter_ in EventFilterSet.base_filters.items():
        description = EventFilterSet.DESCRIPTIONS[name]
        if name in ("since", "until"):
            parameters.append(OpenApiParameter(name, _INSTANT, description=description))
        elif name == "outcome":
            values = [value for value, _ in filter_.extra["choices"] if value]
            parameters.append(
                OpenApiParameter(name, OpenApiTypes.STR, enum=values, description=description)
            )
        else:
            parameters.append(OpenApiParameter(name, OpenApiTypes.STR, description=description))
    return parameters


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Events of your tenants; platform events (no tenant) for platform admins only."""

    model = Event
    serializer_class = EventSerializer
    pagination_class = CappedCountPagination  # `count` stops early: millions of events

    def get_queryset(self):
        return super().get_queryset().select_related("tenant").order_by("-created_at", "-id")

    @extend_schema(
        parameters=filter_parameters(),
        responses={
            200: EventSerializer(many=True),
            400: OpenApiResponse(
                description="A filter is unknown or its value is invalid; "
                "the body names each parameter with its reasons."
            ),
        },
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        events = EventFilterSet(
            self.request.query_params, queryset, strict=True, passthrough=PAGINATION_PARAMS
        )
        if not events.is_valid():
            raise exceptions.ValidationError(events.errors)
        return events.qs
