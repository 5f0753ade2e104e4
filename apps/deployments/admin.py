"""Admin for stacks: read-only views for platform operators.

Every change to a stack goes through apps.deployments.services (revisions, events and
the reconciler); editing rows here would bypass all three, so the admin only shows them.
"""

from django.contrib import admin

from apps.deployments.models import Container, Revision, Secret, Service, Stack


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Stack)
class StackAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "environment", "state", "desired_state", "operation"]
    list_filter = ["state", "desired_state"]
    search_fields = ["name", "tenant__slug"]


@admin.register(Revision)
class RevisionAdmin(ReadOnlyAdmin):
    list_display = ["stack", "number", "reason", "summary", "created_at"]
    search_fields = ["stack__name"]


@admin.register(Service)
class ServiceAdmin(ReadOnlyAdmin):
    list_display = ["stack", "name", "image", "scale", "health"]


@admin.register(Container)
class ContainerAdmin(ReadOnlyAdmin):
    list_display = ["name", "stack", "host", "state", "health", "restart_count"]
    list_filter = ["state"]


@admin.register(Secret)
class SecretAdmin(ReadOnlyAdmin):
    """Names, versions and digests only: the encrypted value is not a field shown here."""

    list_display = ["name", "kind", "tenant", "environment", "version", "digest", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "tenant__slug"]
    fields = ["tenant", "environment", "kind", "name", "version", "digest", "size", "created_at"]
