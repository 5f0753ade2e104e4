from django.contrib import admin

from apps.logs.models import LogRetention, LogSource


@admin.register(LogRetention)
class LogRetentionAdmin(admin.ModelAdmin):
    """Direct edits by platform operators: no maximum and no activity event (tenants use
    the Retention page or the API, through `services.set_retention`)."""

    list_display = ["environment", "days"]


@admin.register(LogSource)
class LogSourceAdmin(admin.ModelAdmin):
    list_display = ["container", "tenant", "environment", "host", "collected_at", "gone_at"]
    readonly_fields = ["cursor_ns", "claimed_by", "claimed_until"]
