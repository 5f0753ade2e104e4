"""A rule firing and resolving on real data: a busy container on the real engine,
sampled by the real collector, an evaluation pass that fires (an e-mail to an SMTP sink,
a signed webhook to a receiver on loopback), then the container removed and the alert
resolved (and both told so)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts import delivery, services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, Delivery
from apps.alerts.rules import verify
from apps.deployments import reconciler
from apps.monitoring import collector
from tests.fixtures.engine import docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

BUSY = """
services:
  web:
    image: ${IMAGE}
    command:
      - sh
      - -c
      - while true; do i=0; while [ $$i -lt 3000 ]; do i=$$((i+1)); done; sleep 0.1; done
    mem_limit: 64m
    stop_grace_period: 1s
"""


def test_rule_fires_and_resolves_on_collected_metrics(
    environment, image, owner, smtp_sink, receiver
):
    stack = make_stack(environment, "alerted", BUSY, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    (container,) = engine_containers(stack)
    tenant = environment.tenant
    mail, _ = services.create_channel(
        owner, tenant, name="ops", kind="email", target="ops@example.test"
    )
    hook, secret = services.create_channel(
        owner, tenant, name="hook", kind="webhook", target=receiver.url
    )
    rule = services.create_rule(
        owner,
        tenant,
        {
            "name": "busy",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 1,
            "duration_seconds": 0,
            "environment": environment,
            "stack": stack,
            "service_name": "web",
            "channels": [mail, hook],
        },
    )

    collector.collect()
    time.sleep(1.05 - (time.time() % 1))  # rows are unique per second
    collector.collect()
    result = evaluate()
    assert result.fired == 1, result
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.value > 1
    assert "alerted/web" in alert.subject
    assert delivery.deliver_due() == 2
    assert smtp_sink.messages[0]["Subject"].strip().startswith("[Berth] FIRING: busy")
    headers, body, _ = receiver.requests[0]
    assert verify(
        secret.encode(),
        headers["x-berth-signature"],
        headers["x-berth-timestamp"],
        body,
        now=time.time(),
    )

    # Gone: no newer rows; once the series is stale the alert resolves.
    docker("rm", "-f", container["Id"])
    later = timezone.now() + timedelta(seconds=collector.interval() * 3 + 1)
    assert evaluate(later).resolved == 1
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.message == "no longer measured"
    assert delivery.deliver_due(later) == 2
    assert json.loads(receiver.requests[-1][1])["event"] == "resolved"
    assert smtp_sink.messages[-1]["Subject"].strip().startswith("[Berth] RESOLVED: busy")
    assert Delivery.objects.filter(state="sent").count() == 4
