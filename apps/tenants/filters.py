"""The filterset of the tenant-owned API lists (environments, memberships, invitations).

`?tenant=<slug>` narrows a queryset the caller may already see (`visible_to`) to one of
their tenants. A slug of a tenant the caller cannot see finds nothing, exactly like a
slug that does not exist: the answer never tells whether another tenant exists.
"""

from __future__ import annotations

import django_filters


class TenantSlugFilterSet(django_filters.FilterSet):
    """`?tenant=<slug>` on any model with a `tenant` foreign key (no model of its own)."""

    tenant = django_filters.CharFilter(
        field_name="tenant__slug", help_text="Only objects of the tenant with this slug."
    )
