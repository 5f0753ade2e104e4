"""One filterset for the activity log, used by the HTML pages and the API alike.

`EventFilterSet(data, queryset)` (django-filter, as NetBox's filtersets) parses and
validates the query parameters (tenant, action, outcome, actor, object type, since,
until) and `.qs` applies them to `queryset`, which the caller has already limited with
`visible_to`: this module never decides tenancy. Invalid parameters are reported per
field in `.errors`; the API turns them into a 400 naming the parameter, the page shows
them next to the filter fields (`.form`).

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
from functools import partial

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
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


def distinct_values(queryset: QuerySet, field: str) -> list:
    """The distinct non-empty values of `field` in `queryset`, in order, in one query.

    A skip scan (a recursive CTE asking the index for the next value above the last one)
    instead of `SELECT DISTINCT`: with an index led by the queryset's equality filters and
    `field` (Event's Meta), it reads one index entry per distinct value, so a million
    events cost what a hundred do. Works on SQLite too.
    """
    base = queryset.order_by(field).values_list(field, flat=True)
    present = base.exclude(**{f"{field}__isnull": True})
    if isinstance(queryset.model._meta.get_field(field), models.CharField):
        present = present.exclude(**{field: ""})
    first_sql, first_params = present[:1].query.sql_with_params()
    above = base.filter(**{f"{field}__gt": RawSQL("skip.value", ())})
    next_sql, next_params = above[:1].query.sql_with_params()
    # Both parts are the ORM's own SQL; every value goes as a parameter.
    sql = (
        f"WITH RECURSIVE skip(value) AS (SELECT ({first_sql}) "  # noqa: S608
        f"UNION ALL SELECT ({next_sql}) FROM skip WHERE skip.value IS NOT NULL) "
        "SELECT value FROM skip WHERE value IS NOT NULL"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, (*first_params, *next_params))
        return [row[0] for row in cursor.fetchall()]


def _offered(values: Callable[[], list], current: str) -> Callable:
    """The choices of a page dropdown: the values present (`values()`: (value, label)
    pairs, read only when the page renders: the API never asks), plus the requested value
    if it is not there."""

    def choices() -> list[tuple[str, str]]:
        options = [(v, text) for v, text in values() if v]
        if current and current not in {v for v, _ in options}:
            options.append((current, current))
        return [ANY, *options]

    return choices


class InstantFilter(django_filters.Filter):
    """since/until: an `InstantField` bound on `created_at` (None: no bound)."""

    field_class = InstantField


class RangeFilterForm(forms.Form):
    """The base of a filterset's form with since/until: the range is not reversed."""

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("since"), cleaned.get("until")
        if start and end and start >= end:
            self.add_error("until", "The end must come after the start.")
        return cleaned


def _exact(field_name: str, label: str) -> django_filters.CharFilter:
    """An exact match; on the page a dropdown of the values present."""
    return django_filters.CharFilter(field_name=field_name, label=label, widget=forms.Select)


class StrictFilterSet(django_filters.FilterSet):
    """A filterset the page and the API share (events, log lines).

    `strict` refuses parameters that are neither filters nor in `passthrough` (the API:
    a misspelt filter would otherwise silently list everything); the page ignores them.
    `exclude` drops filters a surface has no use for (the tenant on a one-tenant page).
    With invalid input `.qs` applies only the valid fields.
    """

    def __init__(
        self,
        data: Mapping | None = None,
        queryset: QuerySet | None = None,
        *,
        strict: bool = False,
        passthrough: Collection[str] = (),
        exclude: Collection[str] = (),
        **kwargs,
    ):
        # No parameters at all is an unbound filterset: no filter, no errors.
        super().__init__(data or None, queryset, **kwargs)
        for name in exclude:
            del self.filters[name]
        self.unknown = (
            sorted(set(data) - set(self.filters) - set(passthrough)) if strict and data else []
        )

    def is_valid(self) -> bool:
        return not self.unknown and (not self.is_bound or self.form.is_valid())

    @property
    def errors(self) -> dict[str, list[str]]:
        """Messages per parameter (`non_field_errors` for the form as a whole)."""
        errors = {name: ["Unknown filter."] for name in self.unknown}
        if self.is_bound:
            for name, messages in self.form.errors.items():
                key = "non_field_errors" if name == forms.forms.NON_FIELD_ERRORS else name
                errors[key] = [str(message) for message in messages]
        return errors


class EventFilterSet(StrictFilterSet):
    """Filters a queryset of events the caller may already see (`visible_to`)."""

    tenant = django_filters.CharFilter(
        field_name="tenant__slug", method="filter_tenant", label="Tenant", widget=forms.Select
    )
    action = _exact("action", "Action")
    outcome = django_filters.ChoiceFilter(
        field_name="outcome", label="Outcome", choices=Event.Outcome.choices, empty_label=ANY[1]
    )
    actor = _exact("actor_name", "Actor")
    object_type = _exact("object_type", "Object type")
    since = InstantFilter(field_name="created_at", lookup_expr="gte", label="Since")
    until = InstantFilter(field_name="created_at", lookup_expr="lt", label="Until", end=True)

    class Meta:
        form = RangeFilterForm

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

    @property
    def form(self) -> forms.Form:
        form = super().form
        if not getattr(self, "_offered", False):
            self._offered = True
            self._offer_choices(form)
        return form

    def _offer_choices(self, form: forms.Form) -> None:
        """The page's dropdowns offer the values present (read only when rendered)."""
        base = self.queryset.order_by()
        for name, field in form.fields.items():
            if not isinstance(self.filters[name], django_filters.CharFilter):
                continue
            current = (self.data.get(name) or "").strip() if self.is_bound else ""
            field.widget.choices = _offered(partial(self._present, base, name), current)

    def _present(self, base: QuerySet, name: str) -> list[tuple[str, str]]:
        """(value, label) of each distinct value of filter `name` in `base`."""
        if name == "tenant":  # skip over the tenant ids, then name them in one query
            ids = distinct_values(base, "tenant_id")
            tenants = Event.tenant.field.related_model.objects  # tenants sit above activity
            return list(tenants.filter(pk__in=ids).order_by("slug").values_list("slug", "name"))
        return [(value, value) for value in distinct_values(base, self.filters[name].field_name)]

    def filter_tenant(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """The slug is looked up first: PostgreSQL then plans for that one tenant's share
        of the events (through a join it assumed an average tenant's, and sorted them)."""
        tenants = Event.tenant.field.related_model.objects  # tenants sit above activity
        ids = list(tenants.filter(slug=value).values_list("pk", flat=True))
        return queryset.filter(tenant_id__in=ids)
