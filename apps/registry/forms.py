"""Forms of the registry pages: they shape input; the service modules decide."""

from __future__ import annotations

from django import forms

from apps.registry.models import MAX_ROBOT_DAYS, Repository, RobotAccount


class VisibilityForm(forms.Form):
    visibility = forms.ChoiceField(choices=Repository.Visibility.choices)


class ConfirmForm(forms.Form):
    """A confirmation page's POST: nothing to fill in."""


class RobotForm(forms.Form):
    name = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens. Logs in as robot$<tenant>+<name>.",
        widget=forms.TextInput(attrs={"placeholder": "ci", "autocomplete": "off"}),
    )
    description = forms.CharField(max_length=300, required=False)
    scope = forms.ChoiceField(choices=RobotAccount.Scope.choices, initial=RobotAccount.Scope.PULL)
    repositories = forms.CharField(
        required=False,
        help_text="Repository names of the tenant, separated by spaces or commas; "
        "empty means all of them.",
        widget=forms.TextInput(attrs={"placeholder": "web api", "autocomplete": "off"}),
    )
    expires_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=MAX_ROBOT_DAYS,
        initial=90,
        help_text="Empty: never expires (revoke it when CI no longer needs it).",
    )


class ThresholdForm(forms.Form):
    pull_alert_threshold = forms.IntegerField(
        label="Alert when one repository is pulled more than (per day)",
        min_value=0,
        help_text="0 switches the alert off.",
    )
