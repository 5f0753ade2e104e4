"""Admin for the activity log: read-only, because an audit log nobody can edit is the point."""

from django.contrib import admin

from apps.activity.models import Event
from apps.core.admin import ReadOnlyAdmin


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "object_repr", "tenant", "outcome"]
    list_filter = ["outcome", "action", "object_type", "tenant"]
    search_fields = ["action", "actor_name", "object_repr", "message"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
