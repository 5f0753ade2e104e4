"""The platform tenant `library`: its slug is reserved, only the platform creates it."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.tenants import services
from apps.tenants.models import PLATFORM_TENANT, Membership, Role, Tenant

pytestmark = pytest.mark.django_db


def test_nobody_takes_the_platform_slug(owner, superuser):
    for actor in (owner, superuser):
        with pytest.raises(ValidationError) as refused:
            services.create_tenant(actor=actor, slug=PLATFORM_TENANT, name="Mine")
        assert "reserved" in str(refused.value)
    assert not Tenant.objects.filter(slug=PLATFORM_TENANT).exists()


def test_platform_tenant_is_created_once_for_an_admin(superuser, owner):
    with pytest.raises(PermissionDenied):
        services.ensure_platform_tenant(owner=owner)
    tenant, created = services.ensure_platform_tenant(owner=superuser)
    assert created and tenant.slug == PLATFORM_TENANT
    assert Membership.objects.get(tenant=tenant).user == superuser
    assert Membership.objects.get(tenant=tenant).role == Role.OWNER
    again, created = services.ensure_platform_tenant(owner=superuser)
    assert (again, created) == (tenant, False)
