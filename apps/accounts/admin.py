"""Admin for API tokens: never shows a key (only its prefix); revocation goes through
apps.accounts.services so it is recorded like any other."""

from django.contrib import admin

from apps.accounts.models import ApiToken
from apps.accounts.services import revoke_token
from apps.core.admin import ReadOnlyAdmin, run_for_each


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "tenant",
        "scope",
        "status",
        "created_at",
        "expires_at",
        "last_used_at",
    ]
    list_filter = ["read_only", "tenant"]
    search_fields = ["name", "prefix", "user__username", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset.filter(revoked_at__isnull=True),
            lambda t: revoke_token(actor=request.user, token=t),
            "Revoked {count} token(s).",
        )
