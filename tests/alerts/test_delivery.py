"""Deliveries to real receivers on loopback: e-mail through Django's SMTP backend to an
SMTP sink, a signed webhook to an http.server receiver that checks the signature, a
receiver failing twice then answering (back-off and attempts in the delivery log), and
the addresses a webhook may not reach."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.alerts import channels, delivery, services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, AlertChannel, Delivery
from apps.alerts.rules import verify
from apps.tenants.models import Environment
from tests.alerts.conftest import container_series, sample

pytestmark = pytest.mark.django_db


def fire_and_resolve(tenant, owner, channel_list):
    """A rule firing on a container, then resolving: two passes (and their deliveries)."""
    env = Environment.objects.get(tenant=tenant, slug="dev")
    rule = services.create_rule(
        owner,
        tenant,
        {
            "name": "cpu high",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
            "duration_seconds": 0,
            "channels": channel_list,
        },
    )
    t0 = timezone.now().replace(microsecond=0)
    series = container_series(tenant, env, "shop-web-1", now=t0)
    sample(series, t0, cpu_percent=93)
    evaluate(t0, send=False)
    return rule, series, t0


def test_email_and_signed_webhook_on_firing_and_resolving(tenant_a, owner, smtp_sink, receiver):
    mail, _ = services.create_channel(
        owner, tenant_a, name="ops", kind="email", target="ops@example.test, oncall@example.test"
    )
    hook, secret = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target=receiver.url
    )
    assert len(secret) >= 32 and secret not in hook.secret_encrypted
    _, series, t0 = fire_and_resolve(tenant_a, owner, [mail, hook])

    assert delivery.deliver_due() == 2
    (message,) = smtp_sink.messages
    assert message["Subject"].strip() == "[Berth] FIRING: cpu high · shop-web-1 (shop/web)"
    assert message["X-Sink-Recipients"] == "ops@example.test, oncall@example.test"
    assert "cpu_percent 93% > 80%" in message.get_content()
    ((headers, body, status),) = receiver.requests
    assert status == 204 and headers["x-berth-event"] == "firing"
    assert verify(
        secret.encode(),
        headers["x-berth-signature"],
        headers["x-berth-timestamp"],
        body,
        now=time.time(),
    )
    assert not verify(
        b"another-secret-16b",
        headers["x-berth-signature"],
        headers["x-berth-timestamp"],
        body,
        now=time.time(),
    )

    sent = json.loads(body)
    assert (sent["event"], sent["tenant"], sent["subject_key"]) == ("firing", "acme", series.key)

    sample(series, t0 + timedelta(seconds=10), cpu_percent=3)
    evaluate(t0 + timedelta(seconds=10), send=False)
    assert delivery.deliver_due(t0 + timedelta(seconds=10)) == 2
    assert smtp_sink.messages[-1]["Subject"].strip().startswith("[Berth] RESOLVED: cpu high")
    assert json.loads(receiver.requests[-1][1])["event"] == "resolved"
    assert set(Delivery.objects.values_list("state", "attempts")) == {("sent", 1)}
    assert delivery.deliver_due(t0 + timedelta(seconds=20)) == 0  # nothing twice


def test_a_receiver_failing_twice_is_retried_with_back_off(tenant_a, owner, receiver, settings):
    settings.BERTH_ALERTS_RETRY_BASE_SECONDS = 0.2
    settings.BERTH_ALERTS_RETRY_MAX_SECONDS = 5
    receiver.fail_first = 2
    hook, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target=receiver.url
    )
    fire_and_resolve(tenant_a, owner, [hook])
    row = Delivery.objects.get()
    times = []
    for _ in range(3):
        while not delivery.deliver_due():
            time.sleep(0.02)
        times.append(time.monotonic())
        row.refresh_from_db()
        if row.attempts < 3:
            assert (row.state, row.last_status, row.last_error) == (
                "pending",
                500,
                "HTTP 500 Internal Server Error",
            )
            # The next attempt waits 0.2 s, then 0.4 s: it is in the log.
            wait = (row.next_attempt_at - timezone.now()).total_seconds()
            assert 0 < wait <= 0.2 * 2 ** (row.attempts - 1) + 0.05
    assert (row.state, row.attempts, row.last_status) == ("sent", 3, 204)
    assert [r[2] for r in receiver.requests] == [500, 500, 204]
    assert times[2] - times[1] >= 0.35  # the second wait was doubled


def test_a_delivery_gives_up_after_the_last_attempt(tenant_a, owner, receiver, settings):
    settings.BERTH_ALERTS_MAX_ATTEMPTS = 1
    receiver.fail_first = 5
    hook, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target=receiver.url
    )
    fire_and_resolve(tenant_a, owner, [hook])
    delivery.deliver_due()
    row = Delivery.objects.get()
    assert (row.state, row.attempts) == ("failed", 1)


def test_two_workers_never_send_one_delivery_twice(tenant_a, owner, receiver):
    hook, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target=receiver.url
    )
    fire_and_resolve(tenant_a, owner, [hook])
    row = Delivery.objects.get()
    now = timezone.now()
    assert delivery.claim(row.pk, now) is True
    assert delivery.claim(row.pk, now) is False  # the lease moved its next attempt on
    assert delivery.deliver_due(now) == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://0.0.0.0/", "unicast"),
        ("http://user:pw@example.com/", "password"),
        ("http:///nohost", "host name"),
    ],
)
def test_webhook_urls_berth_refuses(url, why, settings):
    settings.BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationError) as caught:
        channels.clean_webhook_url(url)
    assert why in str(caught.value.message_dict["target"])


def test_a_name_resolving_to_a_refused_address_is_refused_at_delivery(settings):
    settings.BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK = False
    assert channels.clean_webhook_url("http://localhost:9/hook")  # a name: checked when sent
    with pytest.raises(delivery.DeliveryError, match="loopback"):
        delivery.post_webhook("http://localhost:9/hook", b"{}", {}, 1)


def test_channel_input_errors_name_their_field(tenant_a, owner):
    cases = [
        ({"kind": "email", "target": "not an address"}, "target"),
        ({"kind": "webhook", "target": "https://example.com/", "secret": "short"}, "secret"),
        ({"kind": "pager", "target": "x"}, "kind"),
    ]
    for data, field in cases:
        with pytest.raises(ValidationError) as caught:
            services.create_channel(owner, tenant_a, name="c", **data)
        assert field in caught.value.message_dict
    services.create_channel(owner, tenant_a, name="c", kind="email", target="a@example.test")
    with pytest.raises(ValidationError) as caught:
        services.create_channel(owner, tenant_a, name="c", kind="email", target="a@example.test")
    assert "name" in caught.value.message_dict
    assert AlertChannel.objects.count() == 1
    assert Alert.objects.count() == 0


def test_a_delivery_claimed_by_a_worker_that_died_is_sent_after_the_lease(
    tenant_a, owner, receiver, settings
):
    hook, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target=receiver.url
    )
    fire_and_resolve(tenant_a, owner, [hook])
    row = Delivery.objects.get()
    now = timezone.now()
    assert delivery.claim(row.pk, now)  # ...and the worker is killed before sending
    lease = settings.BERTH_ALERTS_SEND_TIMEOUT + 30
    assert delivery.deliver_due(now + timedelta(seconds=lease - 1)) == 0
    assert delivery.deliver_due(now + timedelta(seconds=lease + 1)) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 1) and len(receiver.requests) == 1
