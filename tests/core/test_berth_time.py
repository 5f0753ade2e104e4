"""The one way times are shown: `{{ value|when }}` (apps/core/templatetags/berth_time.py),
and the time zone preference that decides the zone of its absolute text."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Preferences
from apps.core.templatetags.berth_time import absolute_text, relative_text, when
from tests.conftest import PASSWORD

NOW = dt.datetime(2026, 12, 6, 5, 47, 18, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (dt.timedelta(seconds=-10), "just now"),
        (dt.timedelta(seconds=10), "in a few seconds"),
        (dt.timedelta(seconds=-60), "1 minute ago"),
        (dt.timedelta(minutes=-3), "3 minutes ago"),
        (dt.timedelta(minutes=-44), "44 minutes ago"),
        (dt.timedelta(minutes=-50), "1 hour ago"),
        (dt.timedelta(hours=2), "in 2 hours"),
        (dt.timedelta(hours=-30), "1 day ago"),
        (dt.timedelta(days=-3), "3 days ago"),
        (dt.timedelta(days=10), "in 10 days"),
        (dt.timedelta(days=-40), "1 month ago"),
        (dt.timedelta(days=-95), "3 months ago"),
        (dt.timedelta(days=400), "in 1 year"),
        (dt.timedelta(days=-365 * 3), "3 years ago"),
    ],
)
def test_relative_text_past_and_future(offset, text):
    assert relative_text(NOW + offset, now=NOW) == text


def test_absolute_text_names_the_zone():
    assert absolute_text(NOW, ZoneInfo("Europe/Paris")) == "6 Dec 2026, 06:47:18 (Europe/Paris)"
    assert absolute_text(NOW, ZoneInfo("America/New_York")) == (
        "6 Dec 2026, 00:47:18 (America/New_York)"
    )
    assert absolute_text(NOW, ZoneInfo("UTC")) == "6 Dec 2026, 05:47:18 (UTC)"


def test_when_renders_a_time_element_in_the_active_zone():
    moment = timezone.now() - dt.timedelta(minutes=3)
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        html = Template("{% load berth_time %}{{ t|when }}").render(Context({"t": moment}))
    iso = moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert html.startswith(f'<time datetime="{iso}" title="')
    assert "(Asia/Tokyo)" in html
    assert ">3 minutes ago</time>" in html
    assert absolute_text(moment, ZoneInfo("Asia/Tokyo")) in html


def test_when_future_and_naive_values():
    soon = timezone.now() + dt.timedelta(hours=2, minutes=1)
    assert ">in 2 hours</time>" in when(soon)
    naive = dt.datetime(2020, 1, 1, 12, 0, 0)  # read as UTC
    assert 'datetime="2020-01-01T12:00:00Z"' in when(naive)


def test_when_none_is_muted_text():
    assert when(None) == '<span class="muted">—</span>'
    assert when(None, "never") == '<span class="muted">never</span>'
    assert when("", "unknown") == '<span class="muted">unknown</span>'
    assert when(None, "<b>x</b>") == '<span class="muted">&lt;b&gt;x&lt;/b&gt;</span>'


def test_when_accepts_a_date():
    assert "<time" in when(dt.date(2026, 1, 2))


@pytest.mark.django_db
def test_profile_saves_a_zone_and_pages_use_it(client, owner):
    client.login(username=owner.username, password=PASSWORD)
    response = client.post("/settings/", {"time_zone": "Europe/Paris"})
    assert response.status_code == 302
    assert Preferences.objects.get(user=owner).time_zone == "Europe/Paris"
    page = client.get("/settings/").content.decode()
    assert 'data-tz="Europe/Paris"' in page
    assert "(Europe/Paris)" in page  # "Member since" is written in that zone


@pytest.mark.django_db
def test_profile_refuses_an_unknown_zone(client, owner):
    client.login(username=owner.username, password=PASSWORD)
    response = client.post("/settings/", {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    assert "is no time zone" in response.content.decode()
    assert not Preferences.objects.filter(user=owner).exists()


@pytest.mark.django_db
def test_service_refuses_an_unknown_zone(owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.set_time_zone(owner, "Nowhere/Else")
    services.set_time_zone(owner, "")
    assert Preferences.objects.get(user=owner).time_zone == ""


@pytest.mark.django_db
def test_browser_zone_cookie_without_preference(client, owner):
    client.login(username=owner.username, password=PASSWORD)
    client.cookies["berth_tz"] = "America/New_York"
    page = client.get("/settings/").content.decode()
    assert "(America/New_York)" in page
    assert "data-tz=" not in page  # the browser's own zone: no override for the script
    client.cookies["berth_tz"] = "Not/A_Zone"
    assert "(UTC)" in client.get("/settings/").content.decode()
