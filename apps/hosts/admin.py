"""Admin for hosts: adding, changing and removing go through apps.hosts.services.

The client key is write-only: the form never shows it; leaving it blank keeps it.
"""

import copy

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from apps.core.admin import ReadOnlyAdmin, run_for_each
from apps.hosts import services
from apps.hosts.models import Host, SwarmNode

ENGINE_FIELDS = [
    "state",
    "last_error",
    "engine_version",
    "api_version",
    "operating_system",
    "cpus",
    "memory_bytes",
    "containers_running",
    "containers_total",
    "last_heartbeat_at",
    "last_seen_at",
    "created_at",
]


class HostAdminForm(forms.ModelForm):
    tls_client_key = forms.CharField(
        label="TLS client key",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="PEM, unencrypted. Never shown again; leave blank to keep the current key.",
    )
    clear_tls = forms.BooleanField(
        label="Remove TLS material", required=False, help_text="Connect without TLS."
    )

    class Meta:
        model = Host
        fields = [
            "name",
            "kind",
            "endpoint",
            "tls_ca_cert",
            "tls_client_cert",
            "tls_client_key",
            "tls_verify",
            "labels",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tls_client_key"] = ""
        if "kind" in self.fields:  # left out: a single engine, as before Swarm hosts
            self.fields["kind"].required = False

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or Host.Kind.ENGINE

    def clean(self):
        data = super().clean()
        if data.get("clear_tls"):
            for field in services.TLS_FIELDS:
                data[field] = ""
        elif not data.get("tls_client_key") and self.instance.pk:
            data["tls_client_key"] = self.instance.tls_client_key
        if self.errors:
            return data
        candidate = copy.copy(self.instance)
        for field in services.EDITABLE_FIELDS:
            setattr(candidate, field, data.get(field, getattr(candidate, field)))
        try:
            services.validate_host(candidate)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return data


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostAdminForm
    list_display = [
        "name",
        "kind",
        "endpoint",
        "state",
        "draining",
        "engine_version",
        "cpus",
        "containers_running",
        "last_heartbeat_at",
    ]
    list_filter = ["state", "draining"]
    search_fields = ["name", "endpoint", "last_error"]
    readonly_fields = ["draining", *ENGINE_FIELDS]
    actions = ["heartbeat", "drain", "undrain"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "endpoint", "labels"]}),
        (
            "TLS (tcp:// endpoints)",
            {
                "fields": [
                    "tls_ca_cert",
                    "tls_client_cert",
                    "tls_client_key",
                    "tls_verify",
                    "clear_tls",
                ]
            },
        ),
        ("Last heartbeat", {"fields": ["draining", *ENGINE_FIELDS]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        """The kind is chosen when the host is added, never changed afterwards."""
        fixed = ["kind"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def save_model(self, request, obj, form, change) -> None:
        fields = {f: getattr(obj, f) for f in services.EDITABLE_FIELDS}
        if change:
            services.update_host(actor=request.user, host=obj, **fields)
            return
        host = services.register_host(actor=request.user, kind=obj.kind, **fields)
        obj.pk, obj.created_at = host.pk, host.created_at

    def delete_model(self, request, obj) -> None:
        services.remove_host(actor=request.user, host=obj)

    def delete_queryset(self, request, queryset) -> None:
        for host in queryset:
            services.remove_host(actor=request.user, host=host)

    @admin.action(description="Heartbeat now")
    def heartbeat(self, request, queryset) -> None:
        for host in queryset:
            updated = services.heartbeat(host.pk)
            if updated is not None:
                detail = updated.last_error or f"engine {updated.engine_version}"
                self.message_user(request, f"{updated.name}: {updated.state} ({detail})")

    @admin.action(description="Drain (no new work)")
    def drain(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda h: services.set_draining(actor=request.user, host=h, draining=True),
            "Draining {count} host(s).",
        )

    @admin.action(description="Take back into use")
    def undrain(self, request, queryset) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda h: services.set_draining(actor=request.user, host=h, draining=False),
            "{count} host(s) back in use.",
        )


@admin.register(SwarmNode)
class SwarmNodeAdmin(ReadOnlyAdmin):
    """Nodes of Swarm cluster hosts, as their heartbeats recorded them (drain and
    activate them, and set their engine endpoints, from the host's page). A node's
    client key is never shown."""

    list_display = [
        "hostname", "host", "role", "availability", "state", "address", "engine_endpoint",
        "gone_at",
    ]  # fmt: skip
    exclude = ["engine_tls_client_key"]
    list_filter = ["role", "availability", "state", "host"]
    search_fields = ["hostname", "node_id", "address"]
    list_select_related = ["host"]
