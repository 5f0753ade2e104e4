"""Admin for API tokens: never shows a key (only its prefix); revocation goes through
apps.accounts.services so it is recorded like any other."""

import ldap.dn
from django import forms
from django.contrib import admin

from apps.accounts.models import ApiToken, DirectoryAccount, Preferences
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


class DirectoryLinkForm(forms.ModelForm):
    class Meta:
        model = DirectoryAccount
        fields = ["user", "dn"]

    def clean_dn(self) -> str:
        dn = self.cleaned_data["dn"].strip()
        if not dn or not ldap.dn.is_dn(dn):
            raise forms.ValidationError(
                "Give the directory entry's DN, e.g. uid=alice,ou=people,..."
            )
        return dn


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(ReadOnlyAdmin):
    """Accounts whose password the LDAP directory owns, found at login by their DN.

    Adding one links an existing local account to a directory entry: the entry's next
    LDAP login becomes that account (its tokens, social logins, memberships) and its local
    password stops working. A directory login never does this by itself when a local
    account merely has the same name (apps/accounts/ldap.py). Deleting one hands the
    account back to local passwords (for example after LDAP is switched off); the entry's
    next LDAP login is then refused until the account is linked again or renamed.
    """

    list_display = ["user", "dn", "created_at", "seen_at"]
    search_fields = ["user__username", "user__email", "dn"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    form = DirectoryLinkForm

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Preferences)
class PreferencesAdmin(ReadOnlyAdmin):
    """Users' display choices (the time zone of their pages); users set them on their
    profile page."""

    list_display = ["user", "time_zone"]
    search_fields = ["user__username", "time_zone"]
    list_select_related = ["user"]
