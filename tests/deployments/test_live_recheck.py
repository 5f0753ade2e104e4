"""The access re-check of open sockets, all at once: right codes, fixed query count.

`recheck` is what every web process runs every BERTH_LIVE_RECHECK_SECONDS over all its
open sockets (apps/deployments/consumers/base.py); the sockets closing on those codes are
tested end to end in test_live_access.py.
"""

from __future__ import annotations

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts import services as account_services
from apps.core.roles import Role
from apps.deployments.consumers.base import Access, recheck
from apps.deployments.models import Container, Service, Stack
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(owner):
    return tenant_services.create_tenant(actor=owner, slug="initech", name="Initech")


def make_stacks(tenant, count: int, prefix: str = "s") -> list[Stack]:
    environment = tenant.environments.order_by("pk").first()
    return [
        Stack.objects.create(tenant=tenant, environment=environment, name=f"{prefix}{index}")
        for index in range(count)
    ]


def session_scope(user) -> dict:
    """A socket's scope signed in as `user` (a real session, as the portal makes it)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return {"session": store(session_key=client.cookies["sessionid"].value)}


def entries_for(stacks, user, scope, token=None, role=Role.VIEWER) -> list[Access]:
    token_id = token.pk if token else None
    return [Access(user.pk, token_id, scope, Stack, s.pk, role) for s in stacks]


def queries_of(entries: list[Access]) -> tuple[list[int | None], int]:
    with CaptureQueriesContext(connection) as captured:
        codes = recheck(entries)
    return codes, len(captured)


def test_the_query_count_does_not_grow_with_the_sockets(tenant, owner, member):
    Membership.objects.create(tenant=tenant, user=member, role=Role.MEMBER)
    token, _raw = account_services.create_token(actor=member, name="t", tenant=tenant)
    scope = session_scope(owner)
    few = make_stacks(tenant, 2)
    many = few + make_stacks(tenant, 20, prefix="more")

    small = entries_for(few, owner, scope) + entries_for(few, member, {}, token)
    large = entries_for(many, owner, scope) * 3 + entries_for(many, member, {}, token) * 3
    codes_small, count_small = queries_of(small)
    codes_large, count_large = queries_of(large)

    assert codes_small == [None] * len(small)
    assert codes_large == [None] * len(large)
    assert count_large == count_small


def test_each_socket_gets_its_own_verdict(tenant, owner, member, viewer, outsider):
    Membership.objects.create(tenant=tenant, user=member, role=Role.MEMBER)
    Membership.objects.create(tenant=tenant, user=viewer, role=Role.VIEWER)
    (stack,) = make_stacks(tenant, 1)
    service = Service.objects.create(stack=stack, name="web", image="x")
    host = Host.objects.create(name="elsewhere", endpoint="tcp://192.0.2.1:2376")
    container = Container.objects.create(stack=stack, service=service, host=host, name="web-1")
    revoked, _raw = account_services.create_token(actor=member, name="gone")
    kept, _raw = account_services.create_token(actor=member, name="kept")
    owner_scope, logged_out = session_scope(owner), session_scope(viewer)
    viewer_scope = session_scope(viewer)
    Session.objects.filter(session_key=logged_out["session"].session_key).delete()
    account_services.revoke_token(actor=member, token=revoked)

    entries = [
        Access(owner.pk, None, owner_scope, Stack, stack.pk, Role.VIEWER),  # fine
        Access(member.pk, kept.pk, {}, Container, container.pk, Role.MEMBER),  # fine
        Access(member.pk, revoked.pk, {}, Container, container.pk, Role.VIEWER),  # revoked
        Access(viewer.pk, None, logged_out, Stack, stack.pk, Role.VIEWER),  # logged out
        Access(viewer.pk, None, viewer_scope, Stack, stack.pk, Role.VIEWER),  # fine
        Access(viewer.pk, None, viewer_scope, Container, container.pk, Role.MEMBER),  # a shell
        Access(outsider.pk, None, session_scope(outsider), Stack, stack.pk, Role.VIEWER),
        Access(owner.pk, None, owner_scope, Stack, stack.pk + 1000, Role.VIEWER),  # gone
    ]
    assert recheck(entries) == [None, None, 4401, 4401, None, 4403, 4403, 4403]

    Membership.objects.filter(user=member).delete()
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert recheck(entries[:3]) == [4401, 4403, 4401]
