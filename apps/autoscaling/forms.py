"""The service's autoscaling form: it shapes input; services.check_settings decides."""

from __future__ import annotations

from django import forms

from apps.autoscaling.models import Autoscaler


class AutoscalerForm(forms.Form):
    enabled = forms.BooleanField(
        label="Autoscaling on", required=False, help_text="Off: the settings are kept."
    )
    min_replicas = forms.IntegerField(label="Minimum replicas", min_value=1)
    max_replicas = forms.IntegerField(label="Maximum replicas", min_value=1)
    metric = forms.ChoiceField(label="Scale on", choices=Autoscaler.Metric.choices)
    target = forms.FloatField(
        label="Target",
        help_text="Percent of the container's limit (CPU, memory), or requests per second "
        "per container.",
    )
    cooldown_seconds = forms.IntegerField(
        label="Cooldown (seconds)",
        min_value=0,
        help_text="No other change this long after a scale.",
    )
    step = forms.IntegerField(
        label="Step", min_value=1, help_text="At most this many replicas added or removed at once."
    )
