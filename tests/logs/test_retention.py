"""An environment's log retention: who sets it and within what bounds (the service), the
Retention page, `/api/v1/logs/retention/`, and prune honouring what a tenant set.

Database only (no engine).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from apps.accounts import services as token_services
from apps.activity.models import Event
from apps.core.roles import Role
from apps.logs import services
from apps.logs.models import LogLine, LogRetention
from apps.tenants.models import Membership
from tests.conftest import login
from tests.logs.test_search import add_lines, page_client

pytestmark = pytest.mark.django_db

API = "/api/v1/logs/retention/"


@pytest.fixture(autouse=True)
def _bounds(settings):
    settings.BERTH_LOG_RETENTION_DAYS = 7
    settings.BERTH_LOG_RETENTION_MAX_DAYS = 90


@pytest.fixture
def prod(tenant_a):
    return tenant_a.environments.get(slug="prod")


@pytest.fixture
def admin(make_user, tenant_a):
    user = make_user("ada")
    Membership.objects.create(tenant=tenant_a, user=user, role=Role.ADMIN)
    return user


def kept(environment) -> int | None:
    row = LogRetention.objects.filter(environment=environment).first()
    return row.days if row else None


# --- the service ----------------------------------------------------------------------------


def test_owner_and_admin_set_it_and_each_change_is_an_event(owner, admin, prod):
    retention = services.set_retention(owner, prod, 30)
    assert (retention.days, retention.days_kept, retention.is_default) == (30, 30, False)
    services.set_retention(admin, prod, 0)  # back to the default: no row left
    assert kept(prod) is None
    services.set_retention(admin, prod, 0)  # unchanged: nothing recorded
    events = Event.objects.filter(action="logs.retention").order_by("pk")
    assert [(e.data["old"], e.data["new"], e.data["kept"]) for e in events] == [
        (0, 30, 30),
        (30, 0, 7),
    ]
    assert events[0].tenant == prod.tenant and events[0].actor_name == "olivia"
    assert "platform default (7 days) → 30 days" in events[0].message


@pytest.mark.parametrize("who", ["member", "viewer", "outsider"])
def test_members_viewers_and_outsiders_may_not(request, who, prod):
    with pytest.raises(PermissionDenied):
        services.set_retention(request.getfixturevalue(who), prod, 3)
    assert kept(prod) is None and not Event.objects.filter(action="logs.retention").exists()


@pytest.mark.parametrize("days", [-1, 91, 2.5, "3", True, None])
def test_values_outside_0_to_the_maximum_are_refused_on_days(owner, prod, days):
    with pytest.raises(ValidationError) as refused:
        services.set_retention(owner, prod, days)
    assert refused.value.message_dict == {
        "days": ["Give a whole number of days: 0 (the platform default) or 1 to 90."]
    }
    assert kept(prod) is None


def test_a_platform_admin_may_exceed_the_maximum_up_to_a_century(superuser, owner, prod):
    services.set_retention(superuser, prod, 365)
    assert kept(prod) == 365
    with pytest.raises(ValidationError, match="1 to 36500"):
        services.set_retention(superuser, prod, services.ADMIN_MAX_DAYS + 1)
    services.set_retention(owner, prod, 365)  # an owner may keep it (unchanged) ...
    with pytest.raises(ValidationError, match="1 to 90"):
        services.set_retention(owner, prod, 366)  # ... not raise it
    services.set_retention(owner, prod, 60)  # and may lower it
    assert kept(prod) == 60


# --- prune ----------------------------------------------------------------------------------


def test_prune_honours_what_the_tenant_set(owner, tenant_a, prod):
    dev = tenant_a.environments.get(slug="dev")
    now = timezone.now()
    add_lines(prod, ["prod 10 days old"], start=now - timedelta(days=10))
    add_lines(prod, ["prod 20 days old"], start=now - timedelta(days=20), service="api")
    add_lines(dev, ["dev 10 days old"], start=now - timedelta(days=10))
    services.set_retention(owner, prod, 14)
    assert services.prune_lines() == 2  # prod's 20-day line; dev's past the default 7
    assert list(LogLine.objects.values_list("text", flat=True)) == ["prod 10 days old"]
    services.set_retention(owner, prod, 0)
    assert services.prune_lines() == 1


def test_prune_reads_an_admin_site_value_past_the_century_as_a_century(prod):
    LogRetention.objects.create(environment=prod, days=2_000_000_000)
    add_lines(prod, ["ancient but kept"], start=timezone.now() - timedelta(days=400))
    assert services.prune_lines() == 0  # no OverflowError from the date arithmetic


# --- the API --------------------------------------------------------------------------------


def test_api_lists_the_callers_environments_only(owner, tenant_a, tenant_b, prod):
    services.set_retention(owner, prod, 30)
    rows = login(Client(), owner).get(API).json()["results"]
    assert {(r["tenant"], r["environment"]) for r in rows} == {
        ("acme", "dev"),
        ("acme", "staging"),
        ("acme", "prod"),
    }
    mine = next(r for r in rows if r["environment"] == "prod")
    assert mine == {
        "id": prod.pk,
        "environment": "prod",
        "tenant": "acme",
        "days": 30,
        "days_kept": 30,
        "default": False,
    }
    dev = next(r for r in rows if r["environment"] == "dev")
    assert (dev["days"], dev["days_kept"], dev["default"]) == (0, 7, True)


def test_api_put_and_patch_set_days(owner, prod):
    client = login(Client(), owner)
    answer = client.put(f"{API}{prod.pk}/", {"days": 21}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["days_kept"] == 21 and kept(prod) == 21
    answer = client.patch(f"{API}{prod.pk}/", {}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["days"] == 21  # nothing asked
    answer = client.patch(f"{API}{prod.pk}/", {"days": 0}, content_type="application/json")
    assert answer.json()["default"] is True and kept(prod) is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"days": 91}, "days"),
        ({"days": -2}, "days"),
        ({"days": "many"}, "days"),
        ({}, "days"),
        ({"days": 3, "tenant": "globex"}, "tenant"),
        ({"days": 3, "days_kept": 3}, "days_kept"),
    ],
)
def test_api_refuses_bad_values_and_unknown_fields_naming_them(owner, prod, body, field):
    answer = login(Client(), owner).put(f"{API}{prod.pk}/", body, content_type="application/json")
    assert answer.status_code == 400 and field in answer.json(), answer.content
    assert kept(prod) is None


def test_api_over_the_maximum_says_the_maximum(owner, prod):
    answer = login(Client(), owner).put(
        f"{API}{prod.pk}/", {"days": 91}, content_type="application/json"
    )
    assert "1 to 90" in answer.json()["days"][0]


def test_api_another_tenants_environment_is_404_and_a_viewer_403(
    outsider, viewer, member, tenant_b, prod
):
    url = f"{API}{prod.pk}/"
    body = {"days": 3}
    outsider_client = login(Client(), outsider)
    assert outsider_client.put(url, body, content_type="application/json").status_code == 404
    assert outsider_client.get(url).status_code == 404
    for user in (viewer, member):
        client = login(Client(), user)
        assert client.get(url).status_code == 200
        assert client.put(url, body, content_type="application/json").status_code == 403
    assert kept(prod) is None


def test_api_read_only_token_may_read_not_write(owner, tenant_a, prod):
    _, raw = token_services.create_token(actor=owner, name="ro", read_only=True)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(API).status_code == 200
    answer = client.put(f"{API}{prod.pk}/", {"days": 3}, content_type="application/json")
    assert answer.status_code == 403 and kept(prod) is None


# --- the page -------------------------------------------------------------------------------


def test_owner_edits_on_the_page_with_htmx_and_without(owner, tenant_a, prod):
    client = page_client(owner, tenant_a)
    page = client.get("/logs/retention/").content.decode()
    assert page.count('name="days"') == 3 and "platform default" in page
    assert 'href="/logs/retention/"' in client.get("/logs/").content.decode()
    row = client.post(f"/logs/retention/{prod.pk}/", {"days": "30"}, HTTP_HX_REQUEST="true")
    html = row.content.decode()
    assert row.status_code == 200 and f'id="retention-{prod.pk}"' in html and "<html" not in html
    assert 'data-days-kept="30"' in html and kept(prod) == 30
    plain = client.post(f"/logs/retention/{prod.pk}/", {"days": "0"})
    assert plain.status_code == 302 and plain["Location"] == "/logs/retention/"
    assert kept(prod) is None


def test_a_refused_value_is_shown_on_its_field(owner, tenant_a, prod):
    client = page_client(owner, tenant_a)
    row = client.post(f"/logs/retention/{prod.pk}/", {"days": "400"}, HTTP_HX_REQUEST="true")
    html = row.content.decode()
    assert row.status_code == 200 and "field-invalid" in html and "1 to 90" in html
    page = client.post(f"/logs/retention/{prod.pk}/", {"days": "soon"}).content.decode()
    assert "<html" in page and f'id="id_env{prod.pk}_days_error"' in page
    assert "Give a whole number of days" in page and kept(prod) is None


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_read_the_page_and_cannot_post(request, who, tenant_a, prod):
    services.set_retention(tenant_a.memberships.get(role=Role.OWNER).user, prod, 30)
    client = page_client(request.getfixturevalue(who), tenant_a)
    page = client.get("/logs/retention/").content.decode()
    assert 'name="days"' not in page and "data-read-only" in page and 'data-days-kept="30"' in page
    assert client.post(f"/logs/retention/{prod.pk}/", {"days": "3"}).status_code == 403
    assert kept(prod) == 30


def test_another_tenants_environment_is_404_on_the_page(outsider, tenant_b, prod):
    client = page_client(outsider, tenant_b)
    assert client.post(f"/logs/retention/{prod.pk}/", {"days": "3"}).status_code == 404
    assert "acme" not in client.get("/logs/retention/").content.decode().lower()
