"""The activity page: the current tenant's events, filterable and paginated."""

import pytest
from django.urls import reverse

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.tenants import services as tenant_services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_activity_shows_only_the_current_tenant(tenant_a, tenant_b, owner, client_for):
    record_event("host.register", message="platform-only")
    response = client_for(owner).get(reverse("activity:list"))
    assert response.status_code == 200
    events = list(response.context["events"])
    assert events
    assert {e.tenant_id for e in events} == {tenant_a.pk}
    body = response.content.decode()
    assert "Globex" not in body
    assert "platform-only" not in body


def test_activity_filters(tenant_a, owner, member, client_for):
    tenant_services.update_tenant(actor=owner, tenant=tenant_a, name="Acme 2")
    record_event("stack.deploy", actor=member, tenant=tenant_a, outcome="failure")
    client = client_for(owner)
    url = reverse("activity:list")

    def actions(**params):
        return [e.action for e in client.get(url, params).context["events"]]

    assert actions(action="tenant.update") == ["tenant.update"]
    assert actions(outcome="failure") == ["stack.deploy"]
    assert actions(actor="marcus") == ["stack.deploy"]
    assert set(actions(object_type="tenant")) == {"tenant.create", "tenant.update"}
    today = Event.objects.first().created_at.date().isoformat()
    assert len(actions(since=today, until=today)) == 3
    assert actions(until="2000-01-01") == []


def test_bad_filters_are_field_errors(tenant_a, owner, client_for):
    response = client_for(owner).get(
        reverse("activity:list"),
        {"since": "yesterday", "outcome": "maybe", "action": "no.such", "until": "2020-01-01"},
    )
    assert response.status_code == 200
    errors = response.context["filter_form"].errors
    assert set(errors) == {"since", "outcome"}
    # An action nobody has done (yet) is a filter that finds nothing, as in the API.
    assert list(response.context["events"]) == []


def test_reversed_date_range_is_refused(tenant_a, owner, client_for):
    response = client_for(owner).get(
        reverse("activity:list"), {"since": "2024-02-01", "until": "2024-01-01"}
    )
    assert "until" in response.context["filter_form"].errors


def test_htmx_filter_returns_the_table_partial(tenant_a, owner, client_for):
    response = client_for(owner).get(
        reverse("activity:list"), {"action": "tenant.create"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" not in body
    assert "tenant.create" in body
    assert "HX-Request" in response["Vary"]


def test_activity_is_paginated(tenant_a, owner, client_for):
    for i in range(30):
        record_event("test.ping", actor=owner, tenant=tenant_a, message=str(i))
    client = client_for(owner)
    first = client.get(reverse("activity:list"), {"action": "test.ping"})
    assert len(first.context["events"]) == 25
    assert "page=2" in first.content.decode()
    second = client.get(reverse("activity:list"), {"action": "test.ping", "page": 2})
    assert len(second.context["events"]) == 5


def test_all_activity_is_for_superusers_only(tenant_a, tenant_b, owner, superuser, client_for):
    record_event("host.register", message="platform-event")
    assert client_for(owner).get(reverse("activity:all")).status_code == 404
    response = client_for(superuser).get(reverse("activity:all"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "platform-event" in body
    assert "globex" in body
    assert "acme" in body
