"""What one websocket handshake reads: authentication and the access check together, in
a fixed, small number of queries, with the same verdicts as before.

`authorize` is the database call every socket makes once accepted (consumers/base.py);
the handshake before it reads nothing (`HandshakeMiddleware`).
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts import services as account_services
from apps.core.roles import Role
from apps.deployments.consumers.base import authorize
from apps.deployments.models import Container, Service, Stack
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership
from tests.deployments.test_live_recheck import session_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def container(owner):
    tenant = tenant_services.create_tenant(actor=owner, slug="initech", name="Initech")
    environment = tenant.environments.order_by("pk").first()
    stack = Stack.objects.create(tenant=tenant, environment=environment, name="shop")
    service = Service.objects.create(stack=stack, name="web", image="x")
    host = Host.objects.create(name="elsewhere", endpoint="tcp://192.0.2.1:2376")
    return Container.objects.create(stack=stack, service=service, host=host, name="web-1")


def handshake(scope: dict, model, pk: int, role: str = Role.VIEWER):
    scope = {"session": None, "raw_token": None, "token": None, **scope}
    with CaptureQueriesContext(connection) as captured:
        code, obj = authorize(scope, model, pk, role)
    return code, obj, len(captured), scope


def test_a_token_handshake_reads_the_token_and_the_object_only(container, owner):
    _token, raw = account_services.create_token(actor=owner, name="cli")
    code, obj, queries, scope = handshake({"raw_token": raw}, Container, container.pk)
    assert (code, obj) == (None, container)
    assert obj.host.name == "elsewhere" and obj.stack.tenant.slug == "initech"
    assert queries == 2
    assert scope["user"] == owner and scope["token"].pk == _token.pk


def test_a_session_handshake_reads_the_session_the_user_and_the_object(container, owner):
    code, obj, queries, scope = handshake(session_scope(owner), Stack, container.stack_id)
    assert (code, obj) == (None, container.stack)
    assert queries == 3
    assert scope["user"] == owner and scope["token"] is None


def test_the_verdicts_are_the_same_as_before(container, owner, member, viewer, outsider):
    tenant = container.stack.tenant
    Membership.objects.create(tenant=tenant, user=viewer, role=Role.VIEWER)
    logged_out = session_scope(viewer)
    Session.objects.filter(session_key=logged_out["session"].session_key).delete()
    revoked, revoked_raw = account_services.create_token(actor=owner, name="gone")
    account_services.revoke_token(actor=owner, token=revoked)
    _read_only, read_only_raw = account_services.create_token(
        actor=owner, name="ro", tenant=tenant, read_only=True
    )

    def code_of(scope, model=Container, pk=container.pk, role=Role.VIEWER):
        return handshake(scope, model, pk, role)[0]

    assert code_of({}) == 4401
    assert code_of(logged_out) == 4401
    assert code_of({"raw_token": revoked_raw}) == 4401
    assert code_of({"raw_token": "berth_not-a-real-token"}) == 4401
    # A bad token falls back to the session, as it always did.
    assert code_of({**session_scope(owner), "raw_token": "berth_nope"}) is None
    assert code_of(session_scope(outsider)) == 4404
    assert code_of(session_scope(owner), pk=container.pk + 1000) == 4404
    assert code_of(session_scope(viewer), role=Role.MEMBER) == 4403
    assert code_of({"raw_token": read_only_raw}, role=Role.MEMBER) == 4403
    assert code_of({"raw_token": read_only_raw}) is None
    signed_in_before = session_scope(owner)
    owner.set_password("changed-Secret-123")
    owner.save()
    assert code_of(signed_in_before) == 4401, "a password change signs other sessions out"
