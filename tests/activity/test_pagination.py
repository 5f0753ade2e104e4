"""The activity log pages through millions of events without counting them: the page
shows Newer/Older, the API's `count` stops early and `next` says whether more follow."""

import pytest
from django.urls import reverse

from apps.core.pagination import CappedCountPagination
from tests.portal import growth

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_page_has_older_and_newer_without_a_total(tenant_a, member, client_for):
    growth.add_events(tenant_a, 59, actor=member)  # 60 with the tenant's creation
    client = client_for(member)
    url = reverse("activity:list")
    first = client.get(url)
    assert len(first.context["events"]) == 25
    body = first.content.decode()
    assert "Page 1" in body and "in all" not in body
    assert "page=2" in body
    last = client.get(url, {"page": 3})
    assert len(last.context["events"]) == 10
    assert not last.context["page_obj"].has_next()
    assert "page=2" in last.content.decode()
    assert client.get(url, {"page": 4}).status_code == 404
    assert client.get(url, {"page": "last"}).status_code == 404
    assert client.get(url, {"page": "x"}).status_code == 404


def test_api_count_stops_early_and_next_goes_on(tenant_a, member, api_as, monkeypatch):
    monkeypatch.setattr(CappedCountPagination, "max_count", 10)
    growth.add_events(tenant_a, 29, actor=member)  # 30 with the tenant's creation
    client = api_as(member)[0]
    first = client.get("/api/v1/events/?limit=5").json()
    assert first["count"] == 10  # a lower bound past max_count
    assert len(first["results"]) == 5 and first["next"]
    deep = client.get("/api/v1/events/?limit=5&offset=20").json()
    assert deep["count"] == 26 and deep["next"]  # one row past the page: more follow
    end = client.get("/api/v1/events/?limit=5&offset=25").json()
    assert end["count"] == 30 and end["next"] is None
    assert len(end["results"]) == 5
    seen = {row["id"] for offset in range(0, 30, 5) for row in
            client.get(f"/api/v1/events/?limit=5&offset={offset}").json()["results"]}  # fmt: skip
    assert len(seen) == 30


def test_api_count_is_exact_below_the_bound(tenant_a, member, api_as):
    growth.add_events(tenant_a, 6, actor=member)
    assert api_as(member)[0].get("/api/v1/events/").json()["count"] == 7
