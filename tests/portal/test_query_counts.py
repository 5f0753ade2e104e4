"""The pages a user opens most make as many queries with ten rows as with two.

A count that grows with the rows (one query per stack, container or event) is what makes
a portal crawl at a real installation's size (tests/perf/bench_portal_scale.py measures
the time; these tests only compare counts, never time).
"""

import pytest
from django.urls import reverse

from apps.activity.models import Event
from apps.tenants.models import Environment
from tests.portal import growth

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


@pytest.fixture
def env_a(tenant_a):
    """The environment the middleware opens first (the stacks list shows its stacks)."""
    return Environment.objects.filter(tenant=tenant_a).first()


@pytest.fixture
def member_client(member, tenant_a, client_for):
    return client_for(member)


def test_dashboard(member_client, tenant_a, env_a, member):
    growth.add_stacks(env_a, 2)
    growth.add_events(tenant_a, 2, actor=member)

    def grow():
        growth.add_stacks(env_a, 8)
        growth.add_events(tenant_a, 20, actor=member)

    before, after = growth.counts_before_and_after(member_client, reverse("portal:dashboard"), grow)
    assert before == after


def test_stacks_list(member_client, env_a):
    growth.add_stacks(env_a, 2)
    url = reverse("stacks:list")
    before, after = growth.counts_before_and_after(
        member_client, url, lambda: growth.add_stacks(env_a, 8)
    )
    assert before == after


def test_stacks_list_is_paginated(member_client, env_a):
    growth.add_stacks(env_a, 60)
    first = member_client.get(reverse("stacks:list"))
    assert len(first.context["stacks"]) == 50
    assert "Page 1 of 2 · 60 in all" in first.content.decode()
    second = member_client.get(reverse("stacks:list"), {"page": 2})
    assert len(second.context["stacks"]) == 10


# The page, and its status part that the live page fetches on every container event.
@pytest.mark.parametrize("route", ["stacks:detail", "stacks:status"])
def test_stack_page_with_more_services_containers_and_events(member_client, tenant_a, env_a, route):
    stack = growth.add_stacks(env_a, 1)[0]
    growth.add_events(tenant_a, 2, stack=stack)

    def grow():
        growth.add_services(stack, 8, containers_each=3)
        growth.add_events(tenant_a, 20, stack=stack)

    url = reverse(route, args=[stack.pk])
    before, after = growth.counts_before_and_after(member_client, url, grow)
    assert before == after
    assert stack.containers.count() == 26
    assert member_client.get(url).content.decode().count("data-container-id=") == 26


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?action=stack.deploy",
        "?object_type=stack&outcome=failure",
        "?actor=marcus&since=2000-01-01",
        "?page=2",
    ],
)
def test_activity_page_with_filters(member_client, tenant_a, env_a, member, query):
    stack = growth.add_stacks(env_a, 1)[0]
    growth.add_events(tenant_a, 30, stack=stack, actor=member)  # a second page: 25 a page

    def grow():  # more events, and more distinct actions and actors for the dropdowns
        growth.add_events(tenant_a, 60, stack=stack, actor=member)

    url = reverse("activity:list") + query
    before, after = growth.counts_before_and_after(member_client, url, grow)
    assert before == after


def test_activity_dropdowns_offer_every_value_present(member_client, tenant_a, member):
    growth.add_events(tenant_a, 12, actor=member)
    form = member_client.get(reverse("activity:list")).context["filter_form"]
    present = set(Event.objects.filter(tenant=tenant_a).values_list("action", flat=True))
    offered = {value for value, _ in form.fields["action"].widget.choices if value}
    assert offered == present
    actors = {value for value, _ in form.fields["actor"].widget.choices if value}
    assert actors == set(Event.objects.filter(tenant=tenant_a).values_list("actor_name", flat=True))


def test_all_activity_for_platform_admins(superuser, tenant_a, tenant_b, env_a, member, client_for):
    growth.add_events(tenant_a, 3, actor=member)
    growth.add_events(tenant_b, 3)

    def grow():
        growth.add_events(tenant_a, 30, actor=member)
        growth.add_events(tenant_b, 30)

    client = client_for(superuser)
    url = reverse("activity:all") + "?tenant=acme"
    before, after = growth.counts_before_and_after(client, url, grow)
    assert before == after
    choices = client.get(url).context["filter_form"].fields["tenant"].widget.choices
    assert [value for value, _ in choices if value] == ["acme", "globex"]


def test_catalog(member_client, tenant_a):
    growth.add_templates(tenant_a, 2)
    before, after = growth.counts_before_and_after(
        member_client, reverse("catalog:list"), lambda: growth.add_templates(tenant_a, 8)
    )
    assert before == after
