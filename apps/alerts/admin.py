"""Admin for alerting: read-only, every change goes through apps.alerts.services (the
portal and the API), which checks roles and records events."""

from django.contrib import admin

from apps.alerts.models import Alert, AlertChannel, AlertRule, Delivery, Silence
from apps.core.admin import ReadOnlyAdmin


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "environment", "kind", "metric", "threshold", "enabled"]
    list_filter = ["kind", "enabled", "tenant"]
    search_fields = ["name"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["rule", "tenant", "subject", "state", "started_at", "resolved_at"]
    list_filter = ["state", "tenant"]
    search_fields = ["subject", "subject_key"]


@admin.register(AlertChannel)
class AlertChannelAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "kind", "target"]
    list_filter = ["kind", "tenant"]
    exclude = ["secret_encrypted"]


@admin.register(Silence)
class SilenceAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "rule", "subject_key", "ends_at", "created_by"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "alert",
        "channel",
        "event",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
    ]
    list_filter = ["state", "event"]
    exclude = ["payload"]
