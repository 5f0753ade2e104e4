"""Admin for tenants, members, environments and invitations, through apps.tenants.services.

Members join by invitation and change roles in the portal, where the rules live; here a
platform admin browses them, removes members and revokes invitations.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from guardian.admin import GuardedModelAdmin

from apps.core.admin import ReadOnlyAdmin, ReadOnlyInline, run_for_each
from apps.tenants import quotas, services
from apps.tenants.models import (
    Environment,
    Invitation,
    Membership,
    RetiredTenant,
    Tenant,
    TenantQuota,
)


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ["user", "role", "source", "created_at"]
    readonly_fields = fields


class EnvironmentInline(ReadOnlyInline):
    model = Environment
    fields = ["slug", "name", "description", "created_at"]
    readonly_fields = fields


@admin.register(Tenant)
class TenantAdmin(GuardedModelAdmin):
    list_display = ["slug", "name", "member_count", "created_at"]
    search_fields = ["slug", "name"]
    fields = ["slug", "name", "description", "created_at"]
    readonly_fields = ["created_at"]

    @admin.display(description="Members")
    def member_count(self, obj: Tenant) -> int:
        return obj.memberships.count()

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "slug"] if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        # A new tenant gets its owner (you) and default environments from create_tenant.
        return [MembershipInline, EnvironmentInline] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        if change:
            services.update_tenant(
                actor=request.user, tenant=obj, name=obj.name, description=obj.description
            )
            return
        tenant = services.create_tenant(
            actor=request.user, slug=obj.slug, name=obj.name, description=obj.description
        )
        obj.pk, obj.created_at = tenant.pk, tenant.created_at

    def delete_model(self, request, obj) -> None:
        services.delete_tenant(actor=request.user, tenant=obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset) -> None:
        for tenant in queryset:
            services.delete_tenant(actor=request.user, tenant=tenant)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "tenant", "role", "source", "created_at"]
    list_filter = ["role", "source", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    actions = ["remove_members"]

    @admin.action(description="Remove the selected members (their tenant tokens stop working)")
    def remove_members(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda m: services.remove_member(actor=request.user, membership=m),
            "Removed {count} member(s).",
        )


class EnvironmentAdminForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["tenant", "slug", "name", "description", "hosts"]

    def clean_hosts(self):
        """A Swarm cluster is an environment's only host or none (issue 14): its stacks
        are Swarm services, not containers on an engine, and a stack deployed on an
        engine is not moved onto a swarm (nor back). The kind is compared by its stored
        value: tenants sit below hosts and do not import it."""
        hosts = list(self.cleaned_data.get("hosts") or ())
        swarms = [h.name for h in hosts if getattr(h, "kind", "") == "swarm"]
        if swarms and len(hosts) > 1:
            raise ValidationError(
                f"{', '.join(swarms)}: a Swarm cluster must be the environment's only host "
                "(its stacks run as Swarm services, not on single engines)."
            )
        before = {h.pk for h in self.instance.hosts.all()} if self.instance.pk else set()
        changed = {h.pk for h in hosts} != before
        if changed and self.instance.pk and self.instance.stacks.exists():
            was_swarm = self.instance.hosts.filter(kind="swarm").exists()
            if swarms or was_swarm:
                raise ValidationError(
                    "This environment has stacks: they cannot be moved between single "
                    "engines and a Swarm cluster. Remove them first."
                )
        return self.cleaned_data.get("hosts")


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentAdminForm
    list_display = ["slug", "tenant", "name", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["slug", "name", "tenant__slug"]
    list_select_related = ["tenant"]
    filter_horizontal = ["hosts"]
    actions = ["delete_environments"]

    def get_fields(self, request, obj=None):
        return ["tenant", "slug", "name", "description", "hosts"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "slug"] if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # through the action below, which keeps one environment per tenant

    def save_model(self, request, obj, form, change) -> None:
        if change:
            services.update_environment(
                actor=request.user, environment=obj, name=obj.name, description=obj.description
            )
            return
        env = services.create_environment(
            actor=request.user,
            tenant=obj.tenant,
            slug=obj.slug,
            name=obj.name,
            description=obj.description,
        )
        obj.pk, obj.created_at = env.pk, env.created_at

    @admin.action(description="Delete the selected environments")
    def delete_environments(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda e: services.delete_environment(actor=request.user, environment=e),
            "Deleted {count} environment(s).",
        )


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "tenant", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["email", "tenant__slug"]
    list_select_related = ["tenant", "invited_by"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected invitations")
    def revoke(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda i: services.revoke_invitation(actor=request.user, invitation=i),
            "Revoked {count} invitation(s).",
        )


class TenantQuotaForm(forms.ModelForm):
    """TenantQuota's limits, plus registry storage, which its own app keeps."""

    registry_storage = forms.IntegerField(
        min_value=0, max_value=2**63 - 1, help_text="Bytes of registry storage (0: unlimited)."
    )

    class Meta:
        model = TenantQuota
        fields = ["stacks", "containers", "memory", "cpus", "pids"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            lines = {line.key: line for line in quotas.quota_lines(self.instance.tenant)}
            if "registry_storage" in lines:
                self.fields["registry_storage"].initial = lines["registry_storage"].limit

    def clean(self):
        """The service's own checks, as field errors rather than a failed save."""
        cleaned = super().clean()
        for key in quotas.TENANT_LIMITS:
            if cleaned.get(key) is not None:
                try:
                    cleaned[key] = services.quota_value(key, cleaned[key])
                except ValidationError as exc:
                    self.add_error(key, exc.message_dict[key])
        return cleaned


@admin.register(TenantQuota)
class TenantQuotaAdmin(admin.ModelAdmin):
    """Quotas of each tenant, set through apps.tenants.services.set_quotas (0: unlimited).

    Rows are made with their tenant; a tenant made before quotas existed gets its row the
    first time a deploy is checked or its page is shown."""

    form = TenantQuotaForm
    list_display = ["tenant", "stacks", "containers", "memory_size", "cpus", "pids", "updated_at"]
    search_fields = ["tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "updated_at"]
    fields = [
        "tenant",
        "stacks",
        "containers",
        "memory",
        "cpus",
        "pids",
        "registry_storage",
        "updated_at",
    ]

    @admin.display(description="Memory", ordering="memory")
    def memory_size(self, obj: TenantQuota) -> str:
        return filesizeformat(obj.memory) if obj.memory else "unlimited"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        values = {key: form.cleaned_data[key] for key in form.changed_data}
        services.set_quotas(actor=request.user, tenant=obj.tenant, values=values)


@admin.register(RetiredTenant)
class RetiredTenantAdmin(ReadOnlyAdmin):
    """Deleted tenants whose containers, volumes and images are being removed
    (apps/deployments/retirement.py): where a platform admin sees what is left to do."""

    list_display = [
        "slug",
        "tenant_id",
        "deleted_at",
        "stopped_at",
        "registry_cleared_at",
        "remove_after",
        "removed_at",
        "last_error",
    ]
    search_fields = ["slug"]
