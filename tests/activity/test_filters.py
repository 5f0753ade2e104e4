"""The activity filter, one table of cases run on both surfaces: the page and the API.

A good query lists the same events on both; a bad one names the same parameters, as a
form error on the page (status 200) and as a 400 from the API, never a 500.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.activity.filters import EventFilterSet
from apps.activity.models import Event
from apps.activity.services import record_event

pytestmark = pytest.mark.django_db

ALL = ["stack.deploy", "tenant.create", "tenant.update"]


@pytest.fixture
def days(tenant_a, tenant_b, owner, member):
    """Acme: tenant.create (today), stack.deploy (today, failed, by marcus), tenant.update
    (ten days ago). Globex's and the platform's events must never show for olivia."""
    record_event("stack.deploy", actor=member, tenant=tenant_a, outcome="failure")
    record_event("host.register", message="platform event")
    old = record_event("tenant.update", actor=owner, tenant=tenant_a, obj=tenant_a)
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    old.refresh_from_db()
    today = Event.objects.filter(action="stack.deploy").get().created_at.date()
    return {
        "today": today.isoformat(),
        "yesterday": (today - timedelta(days=1)).isoformat(),
        "old": old.created_at.date().isoformat(),
        "cut": (timezone.now() - timedelta(days=1)).isoformat(),
    }


def page(user, params, url="activity:list"):
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse(url), params)
    assert response.status_code == 200
    errors = response.context["filter_form"].errors
    if errors:
        assert response.content.decode().count("field-error") >= len(errors)
        return set(errors)
    return sorted(e.action for e in response.context["events"])


def api(user, params):
    _, raw = token_services.create_token(actor=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get("/api/v1/events/", {"limit": 100, **params})
    if response.status_code == 400:
        body = response.json()
        assert all(isinstance(body[k], list) and body[k] for k in body)
        return set(body)
    assert response.status_code == 200, response.content
    return sorted(row["action"] for row in response.json()["results"])


SURFACES = {"page": page, "api": api}

GOOD = [
    ({}, ALL),
    ({"action": "stack.deploy"}, ["stack.deploy"]),
    ({"action": "no.such"}, []),
    ({"action": "", "outcome": "", "since": "", "until": ""}, ALL),
    ({"outcome": "failure"}, ["stack.deploy"]),
    ({"outcome": "pending"}, []),
    ({"actor": "marcus"}, ["stack.deploy"]),
    ({"actor": "oscar"}, []),
    ({"object_type": "tenant"}, ["tenant.create", "tenant.update"]),
    ({"object_type": "tenant", "actor": "olivia"}, ["tenant.create", "tenant.update"]),
    ({"since": "{today}"}, ["stack.deploy", "tenant.create"]),
    ({"until": "{yesterday}"}, ["tenant.update"]),
    ({"since": "{old}", "until": "{old}"}, ["tenant.update"]),
    ({"since": "{today}", "until": "{today}"}, ["stack.deploy", "tenant.create"]),
    ({"since": "{cut}"}, ["stack.deploy", "tenant.create"]),
    ({"until": "{cut}"}, ["tenant.update"]),
    ({"since": "2000-01-01T00:00:00+02:00"}, ALL),
    ({"since": "2000-01-01T00:00Z", "until": "2000-01-02T00:00Z"}, []),
    ({"since": "0001-01-01", "until": "9999-12-31"}, ALL),
    ({"until": "9999-12-31T23:59:59-12:00"}, ALL),
]

BAD = [
    ({"since": "yesterday"}, {"since"}),
    ({"until": "2024-13-45T00:00:00"}, {"until"}),
    ({"until": "2024-02-30"}, {"until"}),
    ({"since": "99999-01-01"}, {"since"}),
    ({"since": "2024-01-01T25:00"}, {"since"}),
    ({"outcome": "meh"}, {"outcome"}),
    ({"action": "stack\x00deploy"}, {"action"}),
    ({"since": "2024-02-01", "until": "2024-01-01"}, {"until"}),
    ({"since": "2024-01-01T10:00Z", "until": "2024-01-01T09:00Z"}, {"until"}),
    ({"since": "2024-01-02", "until": "2024-01-01T12:00Z"}, {"until"}),
    ({"since": "yesterday", "outcome": "maybe", "actor": "marcus"}, {"since", "outcome"}),
]


def fill(params: dict, days: dict) -> dict:
    return {key: value.format(**days) for key, value in params.items()}


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("params, expected", GOOD)
def test_good_filters_list_the_same_events(surface, params, expected, days, owner):
    assert SURFACES[surface](owner, fill(params, days)) == expected


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("params, fields", BAD)
def test_bad_filters_name_the_same_fields(surface, params, fields, days, owner):
    assert SURFACES[surface](owner, fill(params, days)) == fields


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"tenant": "acme", "object_type": "tenant"}, ["tenant.create", "tenant.update"]),
        ({"tenant": "globex"}, ["tenant.create"]),
        ({"tenant": "nope"}, []),
    ],
)
@pytest.mark.parametrize("surface", ["page", "api"])
def test_tenant_filter_for_operators(surface, params, expected, days, superuser):
    if surface == "page":
        assert page(superuser, params, url="activity:all") == expected
    else:
        assert api(superuser, params) == expected


def test_tenant_filter_never_widens_what_a_user_sees(days, owner):
    """Tenancy comes from visible_to: a foreign tenant's slug finds nothing."""
    assert api(owner, {"tenant": "globex"}) == []
    assert page(owner, {"tenant": "globex"}) == ALL  # one tenant's page has no tenant filter


def test_unknown_parameter_is_400_on_the_api_and_ignored_on_the_page(days, owner):
    assert api(owner, {"colour": "red"}) == {"colour"}
    assert page(owner, {"colour": "red"}) == ALL


def test_page_applies_the_valid_filters_and_keeps_the_requested_values(days, owner):
    client = Client()
    client.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse("activity:list"), {"since": "nope", "actor": "marcus"})
    assert [e.action for e in response.context["events"]] == ["stack.deploy"]
    body = response.content.decode()
    assert '<option value="marcus" selected>' in body
    response = client.get(reverse("activity:list"), {"action": "no.such"})
    assert '<option value="no.such" selected>' in response.content.decode()
    assert "No event matches these filters." in response.content.decode()


def test_page_dropdowns_offer_only_visible_values(days, owner, superuser):
    client = Client()
    client.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    body = client.get(reverse("activity:list")).content.decode()
    assert 'value="marcus"' in body and 'value="stack.deploy"' in body
    assert 'value="oscar"' not in body and "host.register" not in body
    assert 'id="id_tenant"' not in body
    client.force_login(superuser, backend="django.contrib.auth.backends.ModelBackend")
    body = client.get(reverse("activity:all")).content.decode()
    assert '<option value="globex">Globex Corp</option>' in body


def test_api_filtering_runs_no_dropdown_queries(days, owner, django_assert_max_num_queries):
    """The API validates without reading the dropdowns' distinct values."""
    events = EventFilterSet({"actor": "marcus"}, Event.objects.visible_to(owner), strict=True)
    with django_assert_max_num_queries(1):
        assert events.is_valid()
        assert [e.action for e in events.qs] == ["stack.deploy"]
