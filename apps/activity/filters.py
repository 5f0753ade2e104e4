"""One filter for the activity log, used by the HTML page and the API alike.

`EventFilter(data, queryset)` validates the query parameters (action, outcome, actor,
object type, date range) against the events the caller may see, and `.qs` is the
filtered queryset. Invalid parameters are reported per field in `.errors`; the API
turns them into a 400, the page shows them next to the filter fields.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from apps.activity.models import Event


def _choices(queryset: QuerySet, field: str) -> list[tuple[str, str]]:
    values = queryset.order_by(field).values_list(field, flat=True).distinct()
    return [("", "Any")] + [(value, value) for value in values if value]


class EventFilterForm(forms.Form):
    action = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(required=False, choices=[("", "Any"), *Event.Outcome.choices])
    actor = forms.ChoiceField(required=False)
    object_type = forms.ChoiceField(required=False, label="Object type")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data=None, *, queryset: QuerySet, **kwargs):
        super().__init__(data, **kwargs)
        base = queryset.order_by()
        self.fields["action"].choices = _choices(base, "action")
        self.fields["actor"].choices = _choices(base, "actor_name")
        self.fields["object_type"].choices = _choices(base, "object_type")

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise ValidationError({"until": "The end date comes before the start date."})
        return cleaned


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class EventFilter:
    """Filters a queryset of events the caller may already see (`visible_to`)."""

    def __init__(self, data, queryset: QuerySet):
        self.queryset = queryset
        self.form = EventFilterForm(data or None, queryset=queryset)

    def is_valid(self) -> bool:
        return not self.form.is_bound or self.form.is_valid()

    @property
    def errors(self) -> dict:
        return self.form.errors if self.form.is_bound else {}

    @property
    def qs(self) -> QuerySet:
        """The filtered events; with invalid input, only the valid fields apply."""
        if not self.form.is_bound:
            return self.queryset
        self.form.is_valid()
        return apply_filters(self.queryset, self.form.cleaned_data)


def apply_filters(queryset: QuerySet, cleaned: dict) -> QuerySet:
    lookups = {
        "action": "action",
        "outcome": "outcome",
        "actor": "actor_name",
        "object_type": "object_type",
    }
    for field, lookup in lookups.items():
        if cleaned.get(field):
            queryset = queryset.filter(**{lookup: cleaned[field]})
    if cleaned.get("since"):
        queryset = queryset.filter(created_at__gte=_day_start(cleaned["since"]))
    if cleaned.get("until"):
        next_day = cleaned["until"] + timedelta(days=1)
        queryset = queryset.filter(created_at__lt=_day_start(next_day))
    return queryset
