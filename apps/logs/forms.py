"""The retention form of one environment: it shapes input; services.check_days decides."""

from __future__ import annotations

from django import forms


class RetentionForm(forms.Form):
    days = forms.IntegerField(
        label="Days kept",
        help_text="0: the platform default.",
        widget=forms.NumberInput(attrs={"min": 0, "class": "compact", "inputmode": "numeric"}),
    )

    def __init__(self, *args, message: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if message:  # the service's message for a value that is no whole number
            self.fields["days"].error_messages["invalid"] = message
