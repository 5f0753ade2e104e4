"""The API token form: it offers the user's own tenants; the service enforces the rules."""

from django import forms

from apps.accounts.services import MAX_TOKEN_DAYS
from apps.tenants.models import Tenant


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "ci-deploy", "autocomplete": "off"}),
        help_text="What the token is for, so you recognise it later.",
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        empty_label="All my tenants",
        help_text="Bind the token to one tenant; it can then touch nothing else.",
    )
    read_only = forms.BooleanField(
        required=False, label="Read-only", help_text="The token may read but never change."
    )
    expires_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        label="Expires in (days)",
        help_text="Leave empty for a token that does not expire.",
        widget=forms.NumberInput(attrs={"placeholder": "90"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        tenants = Tenant.objects.visible_to(user)
        if user is not None and not user.is_superuser:
            tenants = tenants.filter(memberships__user=user)
        self.fields["tenant"].queryset = tenants.distinct()


class TimeZoneForm(forms.Form):
    """The zone times are shown in; empty follows the browser."""

    time_zone = forms.CharField(
        required=False,
        max_length=64,
        label="Time zone",
        help_text="Times on every page are written in this zone. Empty: your browser's zone.",
        widget=forms.TextInput(
            attrs={"list": "time-zones", "placeholder": "Europe/Paris", "autocomplete": "off"}
        ),
    )

    def clean_time_zone(self) -> str:
        from apps.core.timezones import zone_or_none

        name = self.cleaned_data["time_zone"].strip()
        if name and zone_or_none(name) is None:
            raise forms.ValidationError(
                f"“{name}” is no time zone. Use an IANA name such as Europe/Paris or UTC."
            )
        return name
