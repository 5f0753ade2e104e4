"""Every paginated API list has a ceiling: `?limit=1000000` answers at most MAX_PAGE_SIZE
rows, and an unknown `?page_size=` changes nothing (the default page)."""

from __future__ import annotations

import pytest
from django.conf import settings

from apps.activity.models import Event
from apps.core.pagination import MAX_PAGE_SIZE

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_events(tenant_a):
    Event.objects.bulk_create(
        Event(tenant=tenant_a, action="test.row", message=str(i)) for i in range(MAX_PAGE_SIZE + 20)
    )


def test_a_huge_limit_is_capped(api_as, owner, many_events):
    client, _ = api_as(owner)
    answer = client.get("/api/v1/events/", {"limit": 1_000_000})
    assert answer.status_code == 200
    data = answer.json()
    assert len(data["results"]) == MAX_PAGE_SIZE
    assert data["count"] > MAX_PAGE_SIZE and data["next"]


def test_page_size_is_not_a_way_around_it(api_as, owner, tenant_a, many_events):
    client, _ = api_as(owner)
    answer = client.get("/api/v1/tenants/", {"page_size": 1_000_000, "limit": 1_000_000})
    assert answer.status_code == 200
    answer = client.get("/api/v1/memberships/", {"page_size": 1_000_000})
    assert len(answer.json()["results"]) <= settings.REST_FRAMEWORK["PAGE_SIZE"]


def test_every_list_uses_the_capped_paginator():
    from django.urls import get_resolver

    from apps.core.pagination import CappedLimitOffsetPagination

    seen = 0
    for pattern in get_resolver().url_patterns:
        for view in _views(pattern):
            paginator = getattr(view.cls, "pagination_class", None)
            if paginator is not None:
                seen += 1
                assert issubclass(paginator, CappedLimitOffsetPagination), view.cls
    assert seen > 5


def _views(pattern):
    children = getattr(pattern, "url_patterns", None)
    if children is not None:
        for child in children:
            yield from _views(child)
    elif hasattr(getattr(pattern, "callback", None), "cls"):
        yield pattern.callback
