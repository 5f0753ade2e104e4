"""Admin for the metrics: read-only, the series written by the collector alone."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.monitoring.models import Series


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["key", "kind", "tenant_slug", "stack_name", "service_name", "name",
                    "host_name", "restarts_total", "last_seen_at"]  # fmt: skip
    list_filter = ["kind", "tenant"]
    search_fields = ["key", "name", "stack_name", "service_name", "tenant_slug"]
    date_hierarchy = "last_seen_at"
