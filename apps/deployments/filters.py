"""The filtersets of the deployments API lists (stacks, services, revisions, routes).

Each narrows a queryset the caller may already see (`visible_to`) by the id of a parent
object; an id that is not the caller's finds nothing, exactly like one that does not
exist. A value that is not a number is a 400 naming the parameter.
"""

from __future__ import annotations

import django_filters

from apps.core.filters import IdFilter
from apps.deployments.models import Revision, Route, Secret, Service, Stack


class StackFilterSet(django_filters.FilterSet):
    """`?environment=<id>`: the stacks of one environment."""

    environment = IdFilter(
        field_name="environment_id", help_text="Only stacks of this environment."
    )

    class Meta:
        model = Stack
        fields: list[str] = []


class ServiceFilterSet(django_filters.FilterSet):
    """`?stack=<id>`: the services of one stack."""

    stack = IdFilter(field_name="stack_id", help_text="Only objects of this stack (id).")

    class Meta:
        model = Service
        fields: list[str] = []


class RevisionFilterSet(ServiceFilterSet):
    """`?stack=<id>`: the revisions of one stack."""

    class Meta:
        model = Revision
        fields: list[str] = []


class RouteFilterSet(django_filters.FilterSet):
    """`?stack=<id>`, `?service=<id>`, `?hostname=<name>`: routes of one stack, service or
    host name (the name compared case-insensitively, as host names are)."""

    stack = IdFilter(field_name="stack_id", help_text="Only routes of this stack (id).")
    service = IdFilter(field_name="service_id", help_text="Only routes to this service (id).")
    hostname = django_filters.CharFilter(
        field_name="hostname", lookup_expr="iexact", help_text="Only routes of this host name."
    )

    class Meta:
        model = Route
        fields: list[str] = []


class SecretFilterSet(django_filters.FilterSet):
    """`?environment=<id>`, `?kind=secret|config`: one environment's entries, or one kind."""

    environment = IdFilter(field_name="environment_id", help_text="Only this environment (id).")
    kind = django_filters.ChoiceFilter(
        choices=Secret.Kind.choices, help_text="Only secrets, or only configs."
    )

    class Meta:
        model = Secret
        fields: list[str] = []
