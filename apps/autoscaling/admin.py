"""Admin for autoscaling: read-only, set through the service's page and the API."""

from django.contrib import admin

from apps.autoscaling.models import Autoscaler
from apps.core.admin import ReadOnlyAdmin


@admin.register(Autoscaler)
class AutoscalerAdmin(ReadOnlyAdmin):
    list_display = ["service", "tenant", "enabled", "min_replicas", "max_replicas", "metric",
                    "target", "last_scaled_at", "last_decision"]  # fmt: skip
    list_filter = ["enabled", "metric", "tenant"]
    list_select_related = ["service__stack", "tenant"]
