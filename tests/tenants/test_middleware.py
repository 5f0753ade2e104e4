"""The current tenant is chosen the same way whether a request comes through WSGI (the
test Client) or through Django's ASGI handler, as under daphne (the AsyncClient)."""

from __future__ import annotations

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils.module_loading import import_string

from apps.tenants import services as tenant_services
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from apps.tenants.models import Environment, Membership
from tests.conftest import login

pytestmark = pytest.mark.django_db


def chosen_both_ways(client: Client) -> tuple[tuple, tuple]:
    """(tenant, environment) the middleware put on a page request, with the sync client
    and with an AsyncClient carrying the same cookies."""
    url = reverse("account_email")
    sync_request = client.get(url).wsgi_request
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    async_request = async_to_sync(async_client.get)(url).asgi_request
    return (
        (sync_request.tenant, sync_request.environment),
        (async_request.tenant, async_request.environment),
    )


def choose(client: Client, tenant, environment: Environment | None = None) -> None:
    session = client.session
    session[SESSION_TENANT] = tenant.pk
    session[SESSION_ENVIRONMENT] = environment.pk if environment else None
    session.save()


@pytest.fixture
def second_tenant(owner):
    """A second tenant of the owner's, made after tenant_a (so not the first one)."""
    return tenant_services.create_tenant(actor=owner, slug="later", name="Later Ltd")


def test_without_a_choice_both_modes_pick_the_first_membership(
    owner_client, tenant_a, second_tenant
):
    sync_choice, async_choice = chosen_both_ways(owner_client)
    assert sync_choice == async_choice
    assert sync_choice[0] == tenant_a
    assert sync_choice[1] == tenant_a.environments.order_by("pk").first()


def test_both_modes_keep_the_tenant_and_environment_chosen_in_the_session(
    owner_client, tenant_a, second_tenant
):
    last = second_tenant.environments.order_by("pk").last()
    assert last != second_tenant.environments.order_by("pk").first()
    choose(owner_client, second_tenant, last)
    sync_choice, async_choice = chosen_both_ways(owner_client)
    assert sync_choice == async_choice == (second_tenant, last)


def test_both_modes_drop_a_tenant_the_user_was_removed_from(member, tenant_a, second_tenant):
    client = login(Client(), member)
    choose(client, tenant_a)
    Membership.objects.filter(tenant=tenant_a, user=member).delete()
    sync_choice, async_choice = chosen_both_ways(client)
    assert sync_choice == async_choice == (None, None)


def test_both_modes_leave_anonymous_requests_without_a_tenant(tenant_a):
    sync_choice, async_choice = chosen_both_ways(Client())
    assert sync_choice == async_choice == (None, None)


def test_under_asgi_the_chain_runs_in_one_thread():
    """The innermost middleware is sync-only, so Django runs the chain in one thread
    instead of on the event loop with a hand-off per Django middleware step: see
    CurrentTenantMiddleware's docstring and tests/perf/bench_asgi_requests.py before
    making it (and every middleware above it) async-capable."""
    assert not getattr(import_string(settings.MIDDLEWARE[-1]), "async_capable", False)
    assert isinstance(ASGIHandler()._middleware_chain, SyncToAsync)
