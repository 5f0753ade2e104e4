"""Forms of the alerts pages: they shape input; what is valid is decided once, in
apps.alerts.services and apps.alerts.channels (the API says the same)."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from apps.alerts.models import AlertChannel, AlertRule
from apps.alerts.rules import KIND_FIELDS, METRICS, THRESHOLD_HELP
from apps.alerts.services import environments_of, stacks_of
from apps.deployments.models import Stack
from apps.tenants.models import Environment, Tenant

SCOPED_KINDS = ["metric", "restarts", "flapping", "certificate"]
SHOWN_FOR = {
    **{
        field: [kind for kind, fields in KIND_FIELDS.items() if field in fields]
        for field in ("metric", "comparison", "threshold", "duration_seconds", "window_seconds")
    },
    "stack": SCOPED_KINDS,
    "service_name": SCOPED_KINDS,
}


class AlertRuleForm(forms.Form):
    """A rule of the current tenant; the fields a kind does not read are ignored."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=AlertRule.Kind.choices)
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.none(),
        required=False,
        empty_label="Every environment of the tenant",
    )
    stack = forms.ModelChoiceField(
        queryset=Stack.objects.none(), required=False, empty_label="Any stack"
    )
    service_name = forms.CharField(max_length=100, required=False, label="Service (name)")
    metric = forms.ChoiceField(
        choices=[("", "—")] + [(k, m.label) for k, m in METRICS.items()], required=False
    )
    comparison = forms.ChoiceField(choices=AlertRule.Comparison.choices, required=False)
    threshold = forms.FloatField(
        required=False,
        help_text="; ".join(f"{k}: {v}" for k, v in THRESHOLD_HELP.items()),
    )
    duration_seconds = forms.IntegerField(
        required=False,
        min_value=0,
        label="For (seconds)",
        help_text="How long the condition must hold before the alert fires (0: at once).",
    )
    window_seconds = forms.IntegerField(
        required=False,
        min_value=0,
        label="Window (seconds)",
        help_text="Restarts, flapping and hot images: the span counted.",
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=AlertChannel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Where notifications go (add channels under Channels).",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments_of(tenant)
        self.fields["stack"].queryset = stacks_of(tenant)
        self.fields["channels"].queryset = AlertChannel.objects.filter(tenant=tenant)
        # Only the fields the chosen kind reads are shown (the catalog forms' show_if).
        for name, kinds in SHOWN_FOR.items():
            self.fields[name].widget.attrs["data-show-if"] = json.dumps({"kind": kinds})

    def rule_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["channels"] = list(data.get("channels") or [])
        return data


class AlertChannelForm(forms.Form):
    name = forms.CharField(max_length=64)
    kind = forms.ChoiceField(choices=AlertChannel.Kind.choices)
    target = forms.CharField(
        max_length=1000,
        help_text="E-mail: addresses separated by commas. Webhook: the http(s) URL.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        help_text="Webhook only: the HMAC-SHA256 key the receiver checks the signature "
        "with. Copy it now: it is stored encrypted and never shown again.",
    )


class ChannelEditForm(forms.Form):
    target = forms.CharField(max_length=1000)
    secret = forms.CharField(
        required=False, max_length=200, help_text="Webhook only: a new key (empty: keep it)."
    )


class SilenceForm(forms.Form):
    minutes = forms.IntegerField(min_value=1, max_value=90 * 24 * 60, initial=60)
    match = forms.ChoiceField(
        choices=[
            ("alert", "This rule on this subject"),
            ("rule", "Every subject of this rule"),
            ("subject", "This subject under every rule"),
        ],
        initial="alert",
    )
    comment = forms.CharField(required=False, max_length=200)
