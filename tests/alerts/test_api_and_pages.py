"""The alerts API and pages: roles (viewers read, members write), bad input answered 400
with the field, ack and silence actions, the delivery log, the badge in the top bar."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, AlertChannel, AlertRule, Delivery, Silence
from apps.tenants.models import Environment
from tests.alerts.conftest import container_series, sample

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


@pytest.fixture
def firing(tenant_a, owner):
    """A firing alert of tenant A, with a webhook channel and its delivery."""
    env = Environment.objects.get(tenant=tenant_a, slug="dev")
    channel, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target="https://hooks.example.com/x"
    )
    services.create_rule(
        owner,
        tenant_a,
        {
            "name": "cpu high",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
            "channels": [channel],
        },
    )
    now = timezone.now()
    sample(container_series(tenant_a, env, "shop-web-1", now=now), now, cpu_percent=90)
    evaluate(now, send=False)
    return Alert.objects.get()


def test_member_creates_a_rule_over_the_api_and_a_viewer_may_not(tenant_a, member, viewer):
    body = {
        "tenant": "acme",
        "name": "slow",
        "kind": "metric",
        "metric": "latency_ms",
        "comparison": "gt",
        "threshold": 500,
        "duration_seconds": 120,
    }
    assert post(client_for(viewer), "/api/v1/alert-rules/", body).status_code == 403
    answer = post(client_for(member), "/api/v1/alert-rules/", body)
    assert answer.status_code == 201, answer.content
    assert answer.json()["metric"] == "latency_ms" and answer.json()["tenant"] == "acme"
    listed = client_for(viewer).get("/api/v1/alert-rules/").json()
    assert [r["name"] for r in listed["results"]] == ["slow"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "disk_percent"}, "metric"),
        ({"kind": "disk"}, "kind"),
        ({"comparison": "=="}, "comparison"),
        ({"threshold": "lots"}, "threshold"),
        ({"duration_seconds": -5}, "duration_seconds"),
        ({"name": ""}, "name"),
        ({"tenant": "globex"}, "tenant"),
        ({"channels": [999999]}, "channels"),
        ({"unknown": 1}, "unknown"),
        ({"kind": "restarts", "threshold": 3, "window_seconds": 5}, "window_seconds"),
        ({"service_name": "web"}, "service_name"),
    ],
)
def test_bad_rule_input_is_a_400_naming_the_field(tenant_a, tenant_b, member, change, field):
    body = {
        "tenant": "acme",
        "name": "r",
        "kind": "metric",
        "metric": "cpu_percent",
        "comparison": "gt",
        "threshold": 80,
        **change,
    }
    answer = post(client_for(member), "/api/v1/alert-rules/", body)
    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not AlertRule.objects.exists()


def test_ack_and_silence_over_the_api(firing, member, viewer):
    url = f"/api/v1/alerts/{firing.pk}/"
    assert post(client_for(viewer), url + "ack/", {}).status_code == 403
    answer = post(client_for(member), url + "ack/", {})
    assert answer.status_code == 200 and answer.json()["acknowledged_by"] == "marcus"
    assert post(client_for(member), url + "silence/", {}).status_code == 400
    answer = post(client_for(member), url + "silence/", {"minutes": 30, "match": "rule"})
    assert answer.status_code == 201, answer.content
    silence = Silence.objects.get()
    assert silence.rule_id == firing.rule_id and silence.subject_key == ""
    firing.refresh_from_db()
    assert firing.silenced_until == silence.ends_at
    assert client_for(viewer).get("/api/v1/alerts/?state=firing").json()["count"] == 1
    assert client_for(viewer).get("/api/v1/alerts/?state=nope").status_code == 400
    end = client_for(member).delete(f"/api/v1/alert-silences/{silence.pk}/")
    assert end.status_code == 204
    firing.refresh_from_db()
    assert firing.silenced_until is None


def test_channels_api_hides_the_secret_and_shows_the_delivery_log(firing, tenant_a, member):
    client = client_for(member)
    created = post(
        client,
        "/api/v1/alert-channels/",
        {
            "tenant": "acme",
            "name": "h2",
            "kind": "webhook",
            "target": "https://hooks.example.com/2",
        },
    )
    assert created.status_code == 201 and len(created.json()["secret"]) >= 32
    channel = AlertChannel.objects.get(name="hook")
    shown = client.get(f"/api/v1/alert-channels/{channel.pk}/").json()
    assert "secret" not in shown and "secret_encrypted" not in shown
    log = client.get(f"/api/v1/alert-channels/{channel.pk}/deliveries/").json()
    assert log["count"] == 1 and log["results"][0]["event"] == "firing"
    assert log["results"][0]["attempts"] == 0 and log["results"][0]["state"] == "pending"
    bad = post(
        client,
        "/api/v1/alert-channels/",
        {"tenant": "acme", "name": "h3", "kind": "webhook", "target": "http://169.254.169.254/"},
    )
    assert bad.status_code == 400 and "target" in bad.json()


def test_alerts_page_lists_and_the_badge_counts(firing, member, viewer, tenant_a):
    page = client_for(viewer).get(reverse("alerts:list"))
    text = page.content.decode()
    assert page.status_code == 200
    assert f'data-alert-id="{firing.pk}"' in text and "cpu high" in text
    assert "data-alerts-count>1<" in text
    assert f"/alerts/{firing.pk}/ack/" not in text  # viewers read only
    services.acknowledge(member, firing)
    text = client_for(viewer).get(reverse("alerts:list")).content.decode()
    assert "data-alerts-count" not in text


def test_rule_form_errors_are_shown_next_to_their_field(tenant_a, member):
    client = client_for(member)
    answer = client.post(
        reverse("alerts:rule-create"),
        {"name": "x", "kind": "metric", "metric": "", "comparison": "gt", "threshold": "abc"},
    )
    assert answer.status_code == 400
    form = answer.context["form"]
    assert "metric" in form.errors and "threshold" in form.errors
    good = client.post(
        reverse("alerts:rule-create"),
        {
            "name": "x",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": "90",
            "duration_seconds": "60",
            "enabled": "on",
        },
    )
    assert good.status_code == 302, good.content
    rule = AlertRule.objects.get()
    edit = client.post(
        reverse("alerts:rule-edit", args=[rule.pk]),
        {"name": "x", "kind": "restarts", "threshold": "3", "window_seconds": "10"},
    )
    assert edit.status_code == 400 and "window_seconds" in edit.context["form"].errors


def test_channel_pages_create_and_show_the_log(firing, member, viewer):
    client = client_for(member)
    answer = client.post(
        reverse("alerts:channels"), {"name": "mail", "kind": "email", "target": "nope"}
    )
    assert answer.status_code == 400 and "target" in answer.context["form"].errors
    answer = client.post(
        reverse("alerts:channels"), {"name": "mail", "kind": "email", "target": "ops@example.test"}
    )
    assert answer.status_code == 302
    hook = AlertChannel.objects.get(name="hook")
    Delivery.objects.update(
        attempts=2,
        last_status=500,
        last_error="HTTP 500 boom",
        next_attempt_at=timezone.now() + timedelta(minutes=1),
    )
    page = client_for(viewer).get(reverse("alerts:channel", args=[hook.pk]))
    assert page.status_code == 200 and "HTTP 500 boom" in page.content.decode()
    assert (
        client_for(viewer)
        .post(reverse("alerts:channel", args=[hook.pk]), {"target": "https://x.example/"})
        .status_code
        == 403
    )


def test_the_badge_alone_for_the_top_bars_polling(firing, viewer, outsider):
    answer = client_for(viewer).get(reverse("alerts:badge"))
    assert answer.status_code == 200
    assert "data-alerts-count>1<" in answer.content.decode()
    assert (
        "data-alerts-count"
        not in client_for(outsider).get(reverse("alerts:badge")).content.decode()
    )


def test_silences_over_the_api_and_another_tenants_rule(firing, tenant_b, member, outsider):
    body = {
        "tenant": "acme",
        "subject_key": firing.subject_key,
        "comment": "deploying",
        "ends_at": (timezone.now() + timedelta(hours=2)).isoformat(),
    }
    answer = post(client_for(member), "/api/v1/alert-silences/", body)
    assert answer.status_code == 201, answer.content
    firing.refresh_from_db()
    assert firing.silenced_until is not None
    past = {**body, "ends_at": (timezone.now() - timedelta(hours=1)).isoformat()}
    assert "ends_at" in post(client_for(member), "/api/v1/alert-silences/", past).json()
    neither = {"tenant": "acme", "ends_at": body["ends_at"]}
    assert "rule" in post(client_for(member), "/api/v1/alert-silences/", neither).json()
    foreign = {"tenant": "globex", "rule": firing.rule_id, "ends_at": body["ends_at"]}
    answer = post(client_for(outsider), "/api/v1/alert-silences/", foreign)
    assert answer.status_code == 400 and "rule" in answer.json()
    assert Silence.objects.count() == 1
