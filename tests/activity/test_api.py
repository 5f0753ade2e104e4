"""The activity log over the API: visibility, filters and their errors."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(tenant_a, tenant_b, owner, member):
    record_event("stack.deploy", actor=member, tenant=tenant_a, outcome="failure", message="boom")
    record_event("host.register", actor=None, message="platform event")
    old = record_event("tenant.update", actor=owner, tenant=tenant_a, obj=tenant_a)
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))


def actions(response) -> list[str]:
    return [row["action"] for row in results(response)]


def test_member_sees_own_tenant_events_newest_first(api_as, events, member):
    client, _ = api_as(member)
    rows = results(client.get("/api/v1/events/"))
    assert {r["tenant"] for r in rows} == {"acme"}
    assert rows[0]["action"] == "stack.deploy"
    assert rows[-1]["action"] == "tenant.update"
    stamps = [r["created_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)


def test_platform_events_for_superusers_only(api_as, events, owner, superuser):
    owner_client, _ = api_as(owner)
    assert "host.register" not in actions(owner_client.get("/api/v1/events/"))
    admin_client, _ = api_as(superuser)
    assert "host.register" in actions(admin_client.get("/api/v1/events/"))


@pytest.mark.parametrize(
    "query, expected",
    [
        ("action=stack.deploy", ["stack.deploy"]),
        ("outcome=failure", ["stack.deploy"]),
        ("actor=marcus", ["stack.deploy"]),
        ("object_type=tenant&tenant=acme", ["tenant.create", "tenant.update"]),
        ("tenant=globex", []),
        ("tenant=nope", []),
    ],
)
def test_filters(api_as, events, owner, query, expected):
    client, _ = api_as(owner)
    assert sorted(actions(client.get(f"/api/v1/events/?{query}"))) == expected


def test_since_and_until(api_as, events, owner):
    client, _ = api_as(owner)
    cut = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    recent = actions(client.get("/api/v1/events/", {"since": cut}))
    assert "tenant.update" not in recent and "stack.deploy" in recent
    assert actions(client.get("/api/v1/events/", {"until": cut})) == ["tenant.update"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("since=yesterday", "since"),
        ("until=2024-13-45T00:00:00", "until"),
        ("outcome=meh", "outcome"),
        ("colour=red", "colour"),
    ],
)
def test_bad_filter_is_400(api_as, events, owner, query, field):
    client, _ = api_as(owner)
    response = client.get(f"/api/v1/events/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_pagination_parameters_pass(api_as, events, owner):
    client, _ = api_as(owner)
    response = client.get("/api/v1/events/?limit=1&offset=1")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_foreign_event_is_404_and_log_is_read_only(api_as, events, outsider):
    client, _ = api_as(outsider)
    foreign = Event.objects.filter(tenant__slug="acme").first()
    assert client.get(f"/api/v1/events/{foreign.pk}/").status_code == 404
    assert client.delete(f"/api/v1/events/{foreign.pk}/").status_code == 405
    assert client.post("/api/v1/events/", {"action": "x"}).status_code == 405
