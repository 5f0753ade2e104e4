"""Two evaluation passes at the same moment, in two database sessions: the second waits
for the first's lock on the rules, then finds its alert; one alert, one delivery."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, Delivery
from apps.tenants.models import Environment
from tests.alerts.conftest import container_series, sample

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_passes_at_once_open_one_alert_and_queue_one_delivery(tenant_a, owner):
    env = Environment.objects.get(tenant=tenant_a, slug="dev")
    channel, _ = services.create_channel(
        owner, tenant_a, name="ops", kind="email", target="ops@example.test"
    )
    services.create_rule(
        owner,
        tenant_a,
        {
            "name": "cpu",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
            "channels": [channel],
        },
    )
    now = timezone.now().replace(microsecond=0)
    for name in ("a", "b", "c"):
        sample(container_series(tenant_a, env, name, now=now), now, cpu_percent=90)
    start, errors = threading.Barrier(2), []

    def run() -> None:
        try:
            start.wait()
            evaluate(now, send=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert Alert.objects.filter(state="firing").count() == 3
    assert Delivery.objects.count() == 3
