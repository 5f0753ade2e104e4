"""Admin for API tokens: never shows a key (only its prefix); revocation goes through
apps.accounts.services so it is recorded like any other."""

from django.contrib import admin

from apps.accounts.models import ApiToken, DirectoryAccount
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


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(ReadOnlyAdmin):
    """Accounts whose password the LDAP directory owns. Deleting one hands the account
    back to local passwords (for example after LDAP is switched off); the next LDAP
    login marks it again."""

    list_display = ["user", "dn", "created_at", "seen_at"]
    search_fields = ["user__username", "user__email", "dn"]
    list_select_related = ["user"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser
