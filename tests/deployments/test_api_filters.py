"""Filters of /api/v1/stacks/, services/ and revisions/ (apps.deployments.filters) and the
`against` parameter of a revision's diff: 400 naming the parameter, nothing across tenants."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as token_services

pytestmark = pytest.mark.django_db
EMPTY_PAGE = {"count": 0, "next": None, "previous": None, "results": []}


def client_for(user) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="filters")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def rows(client: APIClient, url: str) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.parametrize(
    "url, field",
    [
        ("/api/v1/stacks/?environment=abc", "environment"),
        ("/api/v1/stacks/?environment=1e3", "environment"),
        ("/api/v1/services/?stack=web", "stack"),
        ("/api/v1/revisions/?stack=1.5", "stack"),
    ],
)
def test_a_filter_that_is_not_an_id_is_400_naming_it(member, stack, url, field):
    response = client_for(member).get(url)
    assert response.status_code == 400, response.content
    assert response.json() == {field: ["Give a number (an id)."]}


def test_lists_filter_by_their_parent(member, stack, env_a):
    client = client_for(member)
    prod = env_a.tenant.environments.get(slug="prod")
    assert [s["id"] for s in rows(client, f"/api/v1/stacks/?environment={env_a.pk}")] == [stack.pk]
    assert rows(client, f"/api/v1/stacks/?environment={prod.pk}") == []
    assert [s["id"] for s in rows(client, "/api/v1/stacks/?environment=")] == [stack.pk]
    names = {s["name"] for s in rows(client, f"/api/v1/services/?stack={stack.pk}")}
    assert names == {"web", "worker"}
    assert [r["number"] for r in rows(client, f"/api/v1/revisions/?stack={stack.pk}")] == [1]


def test_a_foreign_parent_finds_what_a_missing_one_finds(outsider, tenant_b, stack, env_a):
    client = client_for(outsider)
    for path, foreign in [
        ("stacks/?environment=", env_a.pk),
        ("services/?stack=", stack.pk),
        ("revisions/?stack=", stack.pk),
    ]:
        theirs = client.get(f"/api/v1/{path}{foreign}")
        missing = client.get(f"/api/v1/{path}999999")
        assert theirs.status_code == missing.status_code == 200
        assert theirs.json() == missing.json() == EMPTY_PAGE


def test_detail_routes_do_not_read_list_filters(member, stack):
    """A filter narrows a list only: a detail or an action finds its object by id."""
    client = client_for(member)
    web = stack.services.get(name="web")
    revision = stack.current_revision
    assert client.get(f"/api/v1/stacks/{stack.pk}/?environment=abc").status_code == 200
    assert client.get(f"/api/v1/services/{web.pk}/?stack=999999").status_code == 200
    assert client.get(f"/api/v1/revisions/{revision.pk}/diff/?stack=abc").status_code == 200


def test_diff_against_that_is_not_an_id_is_400_naming_it(member, stack):
    client = client_for(member)
    url = f"/api/v1/revisions/{stack.current_revision.pk}/diff/"
    response = client.get(f"{url}?against=r1")
    assert response.status_code == 400
    assert response.json() == {"against": ["Give a number (an id)."]}
    assert client.get(f"{url}?against=").json()["from"] is None  # empty: the previous one
