"""Tenancy in one place: every tenant-owned queryset is filtered by `visible_to`.

Views, API viewsets, consumers and tasks all call it; nothing else decides which
tenant's rows a user may see. Superusers (platform operators) see every tenant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import models

from apps.core.roles import Role, rank, roles_at_least

if TYPE_CHECKING:
    from apps.accounts.models import ApiToken


def visible_tenant_ids(user: Any, min_role: str = Role.VIEWER, token: ApiToken | None = None):
    """A subquery of the tenant ids where `user` holds at least `min_role`.

    A token narrows it further: to its own tenant, and to read access when read-only.
    The memberships are reached through the user (`Membership.user`'s related name), so
    this rule, which every app's querysets use, imports no app above it.
    """
    memberships = user.memberships.filter(role__in=roles_at_least(min_role))
    if token is not None:
        if token.read_only and min_role != Role.VIEWER:
            return memberships.none().values("tenant_id")
        if token.tenant_id:
            memberships = memberships.filter(tenant_id=token.tenant_id)
    return memberships.values("tenant_id")


def is_platform_admin(
    user: Any, token: ApiToken | None = None, min_role: str = Role.VIEWER
) -> bool:
    """Superusers act across tenants, unless their token is bound to one or read-only."""
    if not (user and user.is_authenticated and user.is_active and user.is_superuser):
        return False
    if token is None:
        return True
    return not token.tenant_id and (not token.read_only or min_role == Role.VIEWER)


def role_of(user: Any, tenant: Any) -> str | None:
    """The user's role in the tenant, or None when not a member."""
    if not (user and user.is_authenticated and user.is_active):
        return None
    return tenant.memberships.filter(user=user).values_list("role", flat=True).first()


def require_role(user: Any, tenant: Any, role: str) -> str:
    """Refuse unless the user holds at least `role` (platform admins act as owners)."""
    if user.is_superuser and user.is_active:
        return Role.OWNER
    current = role_of(user, tenant)
    if current is None or rank(current) < rank(role):
        raise PermissionDenied(f"This needs the {role} role in {tenant.slug}.")
    return current


class TenantOwnedQuerySet(models.QuerySet):
    """Queryset of a model that belongs to a tenant through `tenant_lookup`."""

    tenant_lookup = "tenant"

    def visible_to(self, user: Any, min_role: str = Role.VIEWER, token: ApiToken | None = None):
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if is_platform_admin(user, token, min_role):
            return self
        tenant_ids = visible_tenant_ids(user, min_role, token)
        return self.filter(**{f"{self.tenant_lookup}__in": tenant_ids})


class TenantQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "pk"


class EnvironmentQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "tenant"
