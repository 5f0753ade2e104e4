"""One filterset for log lines, used by the Logs page and the API alike.

`LogFilterSet(data, queryset)` narrows lines the caller may already read (`visible_to`):
words to search (`q`), tenant and environment slugs, stack, service and container names,
the stream, a time range (`since`, `until`: the activity log's grammar, one home for
it) and `after` (lines stored after that id: the live tail). Invalid parameters are
reported per field in `.errors` (the API answers 400 naming each one; the page shows
them by the fields). A name that matches nothing finds nothing: a foreign stack looks
like an unknown one.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from apps.activity.filters import InstantFilter, RangeFilterForm, StrictFilterSet
from apps.logs.models import LogLine
from apps.logs.search import MAX_QUERY


class LogFilterSet(StrictFilterSet):
    """Filters a queryset of lines the caller may already read; `strict` refuses unknown
    parameters (the API), `passthrough` names the ones another layer reads."""

    q = django_filters.CharFilter(
        method="filter_q",
        label="Search",
        max_length=MAX_QUERY,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "words to find"}),
    )
    tenant = django_filters.CharFilter(field_name="tenant__slug", label="Tenant")
    environment = django_filters.CharFilter(field_name="environment__slug", label="Environment")
    stack = django_filters.CharFilter(field_name="stack", label="Stack")
    service = django_filters.CharFilter(field_name="service", label="Service")
    container = django_filters.CharFilter(field_name="container", label="Container")
    stream = django_filters.ChoiceFilter(
        field_name="stream", choices=LogLine.Stream.choices, empty_label="Any", label="Stream"
    )
    since = InstantFilter(field_name="ts", lookup_expr="gte", label="Since")
    until = InstantFilter(field_name="ts", lookup_expr="lt", label="Until", end=True)
    after = django_filters.NumberFilter(
        field_name="pk", lookup_expr="gt", label="After id", min_value=0, widget=forms.HiddenInput
    )

    class Meta:
        form = RangeFilterForm

    DESCRIPTIONS = {
        "q": f"Words that must all occur in the line (at most {MAX_QUERY} characters).",
        "tenant": "Tenant slug; a tenant you cannot see finds nothing.",
        "environment": "Environment slug.",
        "stack": "Stack name (lines of a removed stack stay until retention).",
        "service": "Service name.",
        "container": "Container name.",
        "stream": "stdout or stderr.",
        "since": "Lines at or after: a day (YYYY-MM-DD) or an ISO 8601 date and time.",
        "until": "Lines before: a day (YYYY-MM-DD, that day included) or an ISO 8601 "
        "date and time (excluded).",
        "after": "Only lines stored after this line id (a live tail polls with the "
        "largest id it has).",
    }

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.search(value)
