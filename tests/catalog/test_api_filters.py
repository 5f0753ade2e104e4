"""The catalog's filters (apps.catalog.filters.TemplateFilterSet) on the API and the page."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.catalog import services
from apps.catalog.models import Template
from tests.catalog.conftest import BERTH, COMPOSE
from tests.conftest import login

pytestmark = pytest.mark.django_db
SHOP = {
    "slug": "shop",
    "name": "Shop",
    "category": "web",
    "description": "Our shop.",
    "maintainer": "Acme",
}


@pytest.fixture
def shop(member, tenant_a):
    """A private template of tenant A."""
    return services.publish_template(member, tenant_a, SHOP, "1.0.0", COMPOSE, BERTH).template


@pytest.fixture
def redis(db):
    """One of Berth's own templates (no publisher)."""
    return Template.objects.create(
        slug="redis",
        name="Redis",
        category="cache",
        description="Key-value store",
        visibility=Template.Visibility.PUBLIC,
        approval=Template.Approval.APPROVED,
    )


def names(client: Client, query: str) -> list[str]:
    response = client.get(f"/api/v1/templates/?{query}")
    assert response.status_code == 200, response.content
    return [t["name"] for t in response.json()["results"]]


def test_an_unknown_publisher_is_400_naming_it(member, shop, redis):
    client = login(Client(), member)
    response = client.get("/api/v1/templates/?publisher=everyone")
    assert response.status_code == 400
    assert response.json() == {"publisher": ["Use berth, mine or others."]}
    assert names(client, "publisher=") == ["Redis", "Shop"]  # empty: no filter


def test_publisher_category_and_search(member, shop, redis):
    client = login(Client(), member)
    assert names(client, "publisher=mine") == ["Shop"]
    assert names(client, "publisher=berth") == ["Redis"]
    assert names(client, "publisher=others") == []
    assert names(client, "category=cache") == ["Redis"]
    assert names(client, "category=no-such-category") == []
    assert names(client, "q=+key-value+") == ["Redis"]


def test_no_filter_reaches_another_tenants_private_template(outsider, tenant_b, shop, redis):
    client = login(Client(), outsider)
    for query in ("publisher=others", "publisher=mine", "q=shop", "category=web"):
        assert names(client, query) == [], query


def test_the_page_ignores_an_unknown_publisher(member, shop, redis):
    """The page lists every template for a publisher it does not know, as it did before
    the filterset; the API refuses it, where a silent "everything" would mislead a script."""
    client = login(Client(), member)
    page = client.get("/catalog/?publisher=everyone")
    assert page.status_code == 200 and b"Redis" in page.content and b"Shop" in page.content
    search = client.get("/catalog/?publisher=everyone&q=redis")
    assert b"Redis" in search.content and b"Shop" not in search.content
    mine = client.get("/catalog/?publisher=mine")
    assert b"Shop" in mine.content and b"Redis" not in mine.content
