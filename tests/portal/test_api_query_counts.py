"""The API lists the portal's pages mirror make as many queries with ten rows as with two
(stacks, a stack with its services and containers, services, events with filters,
templates), for a Bearer token as a script or CI would send it."""

import pytest

from apps.tenants.models import Environment
from tests.fixtures.api import results
from tests.portal import growth

pytestmark = pytest.mark.django_db


@pytest.fixture
def env_a(tenant_a):
    return Environment.objects.filter(tenant=tenant_a).first()


@pytest.fixture
def api(api_as, member, tenant_a):
    return api_as(member)[0]


def test_stacks_list(api, env_a):
    growth.add_stacks(env_a, 2)
    before, after = growth.counts_before_and_after(
        api, "/api/v1/stacks/", lambda: growth.add_stacks(env_a, 8)
    )
    assert before == after
    assert len(results(api.get("/api/v1/stacks/"))) == 10


def test_stacks_list_is_paginated(api, env_a):
    growth.add_stacks(env_a, 3)
    data = api.get("/api/v1/stacks/?limit=2").json()
    assert data["count"] == 3
    assert len(data["results"]) == 2
    assert data["next"]


@pytest.mark.parametrize("url", ["/api/v1/stacks/{pk}/", "/api/v1/services/?stack={pk}"])
def test_one_stack_with_more_services_and_containers(api, env_a, url):
    stack = growth.add_stacks(env_a, 1)[0]
    before, after = growth.counts_before_and_after(
        api, url.format(pk=stack.pk), lambda: growth.add_services(stack, 8, containers_each=3)
    )
    assert before == after


@pytest.mark.parametrize(
    "query",
    ["", "?action=stack.deploy&outcome=failure", "?object_type=stack&since=2000-01-01"],
)
def test_events_list(api, tenant_a, env_a, member, query):
    stack = growth.add_stacks(env_a, 1)[0]
    growth.add_events(tenant_a, 2, stack=stack, actor=member)
    before, after = growth.counts_before_and_after(
        api,
        "/api/v1/events/" + query,
        lambda: growth.add_events(tenant_a, 20, stack=stack, actor=member),
    )
    assert before == after


def test_templates_list(api, tenant_a):
    growth.add_templates(tenant_a, 2)
    before, after = growth.counts_before_and_after(
        api, "/api/v1/templates/", lambda: growth.add_templates(tenant_a, 8)
    )
    assert before == after


def test_platform_admin_lists(api_as, superuser, tenant_a, tenant_b, env_a):
    client = api_as(superuser)[0]
    growth.add_stacks(env_a, 2)
    growth.add_events(tenant_b, 2)

    def grow():
        growth.add_stacks(env_a, 8)
        growth.add_events(tenant_b, 20)

    for url in ("/api/v1/stacks/", "/api/v1/events/"):
        before, after = growth.counts_before_and_after(client, url, grow)
        assert before == after, url
