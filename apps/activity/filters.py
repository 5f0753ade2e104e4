"""One filter for the activity log, used by the HTML pages and the API alike.

`EventFilter(data, queryset)` parses and validates the query parameters (tenant, action,
outcome, actor, object type, since, until) and `.qs` applies them to `queryset`, which
the caller has already limited with `visible_to`: this module never decides tenancy.
Invalid parameters are reported per field in `.errors`; the API turns them into a 400
naming the parameter, the page shows them next to the filter fields.

The same input means the same thing on both surfaces:

- tenant, action, actor and object_type match exactly; a value that matches no event is
  not an error, it finds nothing (so a foreign tenant looks like an unknown one);
- outcome must be one of `Event.Outcome`;
- since and until take a day (YYYY-MM-DD: from the start of that day, up to and including
  that day) or an ISO 8601 date and time (since: at or after it; until: before it);
- an end before the start is an error on `until`; an empty value is no filter.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from apps.activity.models import Event

ANY = ("", "Any")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class InstantField(forms.Field):
    """A day or an ISO 8601 date and time, cleaned to an aware datetime bound.

    With `end=True` a day means "up to and including that day" (the start of the next
    day, exclusive); the last representable day leaves the range open (None).
    """

    widget = forms.DateInput(attrs={"type": "date"})
    default_error_messages = {
        "invalid": "Enter a day (YYYY-MM-DD) or an ISO 8601 date and time "
        "(YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]).",
    }

    def __init__(self, *, end: bool = False, **kwargs):
        self.end = end
        super().__init__(**kwargs)

    def to_python(self, value) -> datetime | None:
        value = (value or "").strip()
        if not value:
            return None
        try:
            day = forms.DateField().to_python(value)
        except ValidationError:
            day = None
        if day is not None:
            if not self.end:
                return _day_start(day)
            return None if day == date.max else _day_start(day + timedelta(days=1))
        try:
            return forms.DateTimeField().to_python(value)
        except (ValidationError, OverflowError, ValueError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


def _offered(queryset: QuerySet, value: str, label: str, current: str) -> Callable:
    """The choices of a page dropdown: the values present in `queryset`, read only when
    the page renders (the API never asks), plus the requested value if it is not there."""

    def choices() -> list[tuple[str, str]]:
        rows = queryset.order_by(value).values_list(value, label).distinct()
        options = [(v, text) for v, text in rows if v]
        if current and current not in {v for v, _ in options}:
            options.append((current, current))
        return [ANY, *options]

    return choices


class EventFilterForm(forms.Form):
    """The filter parameters; the page renders it, the API only validates with it."""

    tenant = forms.CharField(required=False, widget=forms.Select)
    action = forms.CharField(required=False, widget=forms.Select)
    outcome = forms.ChoiceField(required=False, choices=[ANY, *Event.Outcome.choices])
    actor = forms.CharField(required=False, widget=forms.Select)
    object_type = forms.CharField(required=False, label="Object type", widget=forms.Select)
    since = InstantField(required=False)
    until = InstantField(required=False, end=True)

    # Query parameter -> queryset lookup; since/until are applied as a range.
    LOOKUPS = {
        "tenant": "tenant__slug",
        "action": "action",
        "outcome": "outcome",
        "actor": "actor_name",
        "object_type": "object_type",
    }
    # What each parameter does, for the API schema (the page's fields speak for themselves).
    DESCRIPTIONS = {
        "tenant": "Tenant slug; a tenant you cannot see finds nothing.",
        "action": "Exact action, for example tenant.create.",
        "outcome": "How the change ended.",
        "actor": "Username of who acted (system for Berth itself).",
        "object_type": "Exact object type, for example environment.",
        "since": "Events at or after: a day (YYYY-MM-DD, from its start) "
        "or an ISO 8601 date and time.",
        "until": "Events up to: a day (YYYY-MM-DD, that day included) "
        "or an ISO 8601 date and time (excluded).",
    }
    LABELS = {"tenant": "tenant__name"}

    def __init__(self, data=None, *, queryset: QuerySet, exclude: Collection[str] = ()):
        super().__init__(data)
        for name in exclude:
            del self.fields[name]
        base = queryset.order_by()
        for name, lookup in self.LOOKUPS.items():
            field = self.fields.get(name)
            if field is None or isinstance(field, forms.ChoiceField):
                continue
            current = (self.data.get(name) or "").strip() if self.is_bound else ""
            label = self.LABELS.get(name, lookup)
            field.widget.choices = _offered(base, lookup, label, current)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("since"), cleaned.get("until")
        if start and end and start >= end:
            self.add_error("until", "The end must come after the start.")
        return cleaned


def filter_events(queryset: QuerySet, cleaned: Mapping) -> QuerySet:
    """Apply cleaned filter values to `queryset`; empty values are no filter."""
    lookups = {
        lookup: cleaned[name]
        for name, lookup in EventFilterForm.LOOKUPS.items()
        if cleaned.get(name)
    }
    if cleaned.get("since"):
        lookups["created_at__gte"] = cleaned["since"]
    if cleaned.get("until"):
        lookups["created_at__lt"] = cleaned["until"]
    return queryset.filter(**lookups)


class EventFilter:
    """Filters a queryset of events the caller may already see (`visible_to`).

    `strict` refuses parameters that are neither filters nor in `passthrough` (the API:
    a misspelt filter would otherwise silently list everything); the page ignores them.
    `exclude` drops filters a surface has no use for (the tenant on a one-tenant page).
    """

    def __init__(
        self,
        data: Mapping | None,
        queryset: QuerySet,
        *,
        strict: bool = False,
        passthrough: Collection[str] = (),
        exclude: Collection[str] = (),
    ):
        self.queryset = queryset
        self.form = EventFilterForm(data or None, queryset=queryset, exclude=exclude)
        self.unknown = (
            sorted(set(data) - set(self.form.fields) - set(passthrough)) if strict and data else []
        )

    def is_valid(self) -> bool:
        return not self.unknown and (not self.form.is_bound or self.form.is_valid())

    @property
    def errors(self) -> dict[str, list[str]]:
        """Messages per parameter (`non_field_errors` for the form as a whole)."""
        errors = {name: ["Unknown filter."] for name in self.unknown}
        if self.form.is_bound:
            for name, messages in self.form.errors.items():
                key = "non_field_errors" if name == forms.forms.NON_FIELD_ERRORS else name
                errors[key] = [str(message) for message in messages]
        return errors

    @property
    def qs(self) -> QuerySet:
        """The filtered events; with invalid input, only the valid fields apply."""
        if not self.form.is_bound:
            return self.queryset
        self.form.is_valid()
        return filter_events(self.queryset, self.form.cleaned_data)
