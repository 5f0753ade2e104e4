"""The filtersets of the deployments API lists (stacks, services, revisions).

Each narrows a queryset the caller may already see (`visible_to`) by the id of a parent
object; an id that is not the caller's finds nothing, exactly like one that does not
exist. A value that is not a number is a 400 naming the parameter.
"""

from __future__ import annotations

import django_filters

from apps.core.filters import IdFilter
from apps.deployments.models import Revision, Service, Stack


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
