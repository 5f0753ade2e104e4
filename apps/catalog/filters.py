"""One filterset for the catalog, used by the catalog page and `/api/v1/templates/`.

`TemplateFilterSet(data, queryset, tenant=...)` narrows templates the caller may
already see (`visible_to`): q searches name, description, slug and tags; category
matches exactly (an unknown one finds nothing); publisher is berth, mine (the
`tenant` given: the session's, or the token's on the API) or others. Any other
publisher is invalid: the API answers 400 naming it, the page shows every template.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet

from apps.catalog.models import Template

PUBLISHERS = {"berth": "Berth", "mine": "My tenant", "others": "Other tenants"}


class TemplateFilterSet(django_filters.FilterSet):
    """Filters a queryset of templates the caller may already see."""

    q = django_filters.CharFilter(
        method="search", help_text="Search in name, description, slug and tags."
    )
    category = django_filters.CharFilter(
        field_name="category", help_text="A category slug, e.g. database."
    )
    publisher = django_filters.ChoiceFilter(
        method="published_by",
        choices=list(PUBLISHERS.items()),
        help_text="berth, mine (the token's tenant) or others.",
        error_messages={"invalid_choice": "Use berth, mine or others."},
    )

    class Meta:
        model = Template
        fields: list[str] = []

    def __init__(self, data: Any = None, queryset: QuerySet | None = None, *, tenant=None, **kw):
        super().__init__(data, queryset, **kw)
        self.tenant = tenant

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(slug__icontains=value)
            | Q(tags__icontains=value)
        )

    def published_by(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "berth":
            return queryset.filter(publisher__isnull=True)
        if value == "mine":
            return queryset.filter(publisher=self.tenant) if self.tenant else queryset.none()
        others = queryset.filter(publisher__isnull=False)
        return others.exclude(publisher=self.tenant) if self.tenant else others
