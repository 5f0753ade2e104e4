"""Evaluation passes over stored rows: pending, firing, resolved with their durations,
one open alert per rule and subject however often a pass runs, silences, flapping,
restarts, the other kinds, and a query count that does not grow with the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.activity.services import record_event
from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, AlertRule, Delivery
from apps.hosts.models import Host
from apps.monitoring.models import ContainerSample
from apps.registry.models import Repository, TenantRegistryQuota
from apps.tenants.models import Environment
from apps.traffic.models import Certificate
from tests.alerts.conftest import container_series, sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def env(tenant_a):
    return Environment.objects.get(tenant=tenant_a, slug="dev")


@pytest.fixture
def webhook(tenant_a, owner, settings):
    settings.BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK = True
    channel, _ = services.create_channel(
        owner, tenant_a, name="hook", kind="webhook", target="http://127.0.0.1:9/x"
    )
    return channel


def cpu_rule(tenant, owner, channels=(), **extra) -> AlertRule:
    data = {
        "name": "cpu high",
        "kind": "metric",
        "metric": "cpu_percent",
        "comparison": "gt",
        "threshold": 80,
        "duration_seconds": 60,
        "channels": list(channels),
        **extra,
    }
    return services.create_rule(owner, tenant, data)


def test_pending_then_firing_after_the_duration_then_resolved(tenant_a, env, owner, webhook):
    rule = cpu_rule(tenant_a, owner, [webhook])
    t0 = timezone.now().replace(microsecond=0)
    series = container_series(tenant_a, env, "shop-web-1", now=t0)

    sample(series, t0, cpu_percent=90)
    assert evaluate(t0, send=False).opened == 1
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "pending" and alert.subject_key == series.key

    sample(series, t0 + timedelta(seconds=30), cpu_percent=95)
    evaluate(t0 + timedelta(seconds=30), send=False)
    assert Alert.objects.get(pk=alert.pk).state == "pending"
    assert not Delivery.objects.exists()

    sample(series, t0 + timedelta(seconds=60), cpu_percent=99)
    assert evaluate(t0 + timedelta(seconds=60), send=False).fired == 1
    alert.refresh_from_db()
    assert (alert.state, alert.value, alert.fired_at) == ("firing", 99, t0 + timedelta(seconds=60))
    assert "cpu_percent 99% > 80%" in alert.message
    firing = Delivery.objects.get(alert=alert)
    assert (firing.event, firing.state, firing.payload["subject_key"]) == (
        "firing",
        "pending",
        series.key,
    )

    sample(series, t0 + timedelta(seconds=70), cpu_percent=5)
    assert evaluate(t0 + timedelta(seconds=70), send=False).resolved == 1
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at == t0 + timedelta(seconds=70)
    assert set(Delivery.objects.values_list("event", flat=True)) == {"firing", "resolved"}

    # History stays; the next time the condition holds, a new alert opens.
    sample(series, t0 + timedelta(seconds=80), cpu_percent=90)
    evaluate(t0 + timedelta(seconds=80), send=False)
    assert Alert.objects.filter(rule=rule).count() == 2


def test_a_pending_alert_whose_condition_clears_is_dropped(tenant_a, env, owner):
    cpu_rule(tenant_a, owner)
    t0 = timezone.now().replace(microsecond=0)
    series = container_series(tenant_a, env, "shop-web-1", now=t0)
    sample(series, t0, cpu_percent=90)
    evaluate(t0, send=False)
    sample(series, t0 + timedelta(seconds=10), cpu_percent=10)
    assert evaluate(t0 + timedelta(seconds=10), send=False).dropped == 1
    assert not Alert.objects.exists()


def test_a_pass_run_twice_opens_and_notifies_once(tenant_a, env, owner, webhook):
    cpu_rule(tenant_a, owner, [webhook], duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    sample(container_series(tenant_a, env, "shop-web-1", now=t0), t0, cpu_percent=90)
    evaluate(t0, send=False)
    evaluate(t0, send=False)
    evaluate(t0 + timedelta(seconds=1), send=False)
    assert Alert.objects.filter(state="firing").count() == 1
    assert Delivery.objects.count() == 1


def test_the_database_refuses_a_second_open_alert(tenant_a, env, owner):
    rule = cpu_rule(tenant_a, owner)
    now = timezone.now()
    fields = {
        "tenant": tenant_a,
        "rule": rule,
        "subject_key": "c1:x",
        "started_at": now,
        "evaluated_at": now,
    }
    Alert.objects.create(state="firing", **fields)
    Alert.objects.create(state="resolved", **fields)  # history is not "open"
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(state="pending", **fields)


def test_scope_by_environment_stack_and_service(tenant_a, env, owner):
    prod = Environment.objects.get(tenant=tenant_a, slug="prod")
    cpu_rule(tenant_a, owner, duration_seconds=0, environment=prod)
    t0 = timezone.now().replace(microsecond=0)
    sample(container_series(tenant_a, env, "dev-web-1", now=t0), t0, cpu_percent=90)
    sample(container_series(tenant_a, prod, "prod-web-1", now=t0), t0, cpu_percent=90)
    evaluate(t0, send=False)
    assert list(Alert.objects.values_list("subject_key", flat=True)) == ["c1:prod-web-1"]


def test_another_tenants_rows_never_reach_a_rule(tenant_a, tenant_b, env, owner):
    cpu_rule(tenant_a, owner, duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    other = Environment.objects.filter(tenant=tenant_b).first()
    sample(container_series(tenant_b, other, "globex-web-1", now=t0), t0, cpu_percent=99)
    evaluate(t0, send=False)
    assert not Alert.objects.exists()


def test_memory_percent_of_the_limit(tenant_a, env, owner):
    data = {
        "name": "mem",
        "kind": "metric",
        "metric": "memory_percent",
        "comparison": "ge",
        "threshold": 90,
        "duration_seconds": 0,
    }
    services.create_rule(owner, tenant_a, data)
    t0 = timezone.now().replace(microsecond=0)
    sample(
        container_series(tenant_a, env, "a", now=t0), t0, memory_bytes=95, memory_limit_bytes=100
    )
    sample(
        container_series(tenant_a, env, "b", now=t0), t0, memory_bytes=50, memory_limit_bytes=100
    )
    sample(container_series(tenant_a, env, "c", now=t0), t0, memory_bytes=99)  # no limit
    evaluate(t0, send=False)
    assert list(Alert.objects.values_list("subject_key", flat=True)) == ["c1:a"]


def test_a_silenced_alert_fires_without_notifying_and_leaves_the_badge(
    tenant_a, env, owner, webhook
):
    rule = cpu_rule(tenant_a, owner, [webhook], duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    series = container_series(tenant_a, env, "shop-web-1", now=t0)
    services.create_silence(owner, tenant_a, rule=rule, ends_at=t0 + timedelta(hours=1))
    sample(series, t0, cpu_percent=90)
    evaluate(t0, send=False)
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.silenced_until == t0 + timedelta(hours=1)
    assert not Delivery.objects.exists()
    badge = services.firing_unacknowledged(Alert.objects.all(), now=t0)
    assert badge.count() == 0
    # Resolution is not announced where the firing was not.
    sample(series, t0 + timedelta(seconds=10), cpu_percent=1)
    evaluate(t0 + timedelta(seconds=10), send=False)
    assert not Delivery.objects.exists()


def test_acknowledged_alerts_leave_the_badge(tenant_a, env, owner, member):
    cpu_rule(tenant_a, owner, duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    sample(container_series(tenant_a, env, "w", now=t0), t0, cpu_percent=90)
    evaluate(t0, send=False)
    alert = Alert.objects.get()
    assert services.firing_unacknowledged(Alert.objects.all()).count() == 1
    services.acknowledge(member, alert)
    alert.refresh_from_db()
    assert alert.acknowledged_by == member and alert.acknowledged_at is not None
    assert services.firing_unacknowledged(Alert.objects.all()).count() == 0


def test_health_flapping_and_restarts_within_the_window(tenant_a, env, owner):
    common = {"threshold": 3, "window_seconds": 300}
    flapping = services.create_rule(owner, tenant_a, {"name": "flap", "kind": "flapping", **common})
    restarts = services.create_rule(owner, tenant_a, {"name": "rs", "kind": "restarts", **common})
    t0 = timezone.now().replace(microsecond=0)
    steady = container_series(tenant_a, env, "steady", now=t0)
    flappy = container_series(tenant_a, env, "flappy", now=t0)
    for i, health in enumerate([2, 3, 2, 3, 2]):
        at = t0 - timedelta(seconds=100 - i * 10)
        sample(steady, at, health=2)
        sample(flappy, at, health=health, restarts=1)
    # Old rows outside the window do not count.
    ContainerSample.objects.create(
        series=steady, tier=0, at=t0 - timedelta(seconds=900), restarts=9
    )
    evaluate(t0, send=False)
    assert {a.rule_id: a.subject_key for a in Alert.objects.all()} == {
        flapping.pk: "c1:flappy",
        restarts.pk: "c1:flappy",
    }
    assert Alert.objects.get(rule=flapping).value == 4


def test_host_unreachable_registry_hot_image_and_certificate(tenant_a, env, owner):
    host = Host.objects.create(name="h1", endpoint="tcp://h1.invalid:2376", state="unreachable")
    env.hosts.add(host)
    Host.objects.create(name="foreign", endpoint="tcp://f.invalid:2376", state="unreachable")
    silent = Host.objects.create(
        name="h2",
        endpoint="tcp://h2.invalid:2376",
        state="active",
        last_seen_at=timezone.now() - timedelta(hours=1),
    )
    fresh = Host.objects.create(
        name="h3", endpoint="tcp://h3.invalid:2376", state="active", last_seen_at=timezone.now()
    )
    env.hosts.add(silent, fresh)
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=100, used_bytes=95)
    repository = Repository.objects.create(tenant=tenant_a, name="web")
    record_event(
        "registry.pull_alert",
        tenant=tenant_a,
        obj=repository,
        message="hot",
        data={"pulls": 11, "threshold": 10},
    )
    now = timezone.now()
    Certificate.objects.create(
        tenant=tenant_a, hostname="soon.example", kind="uploaded", not_after=now + timedelta(days=3)
    )
    Certificate.objects.create(
        tenant=tenant_a,
        hostname="later.example",
        kind="uploaded",
        not_after=now + timedelta(days=60),
    )
    for data in (
        {"kind": "host_unreachable"},
        {"kind": "registry_quota", "threshold": 90},
        {"kind": "hot_image", "window_seconds": 86400},
        {"kind": "certificate", "threshold": 14},
    ):
        services.create_rule(owner, tenant_a, {"name": data["kind"], **data})
    evaluate(now, send=False)
    assert sorted(Alert.objects.filter(state="firing").values_list("subject", flat=True)) == [
        "acme/web",
        "h1",
        "h2",
        "registry storage",
        "soon.example",
    ]


def test_query_count_does_not_grow_with_containers_or_samples(tenant_a, env, owner, webhook):
    for kind in ("flapping", "restarts"):
        services.create_rule(
            owner, tenant_a, {"name": kind, "kind": kind, "threshold": 1, "window_seconds": 300}
        )
    cpu_rule(tenant_a, owner, [webhook], duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)

    def grow(names, at):
        for name in names:
            series = container_series(tenant_a, env, name, now=at)
            for i in range(3):
                sample(
                    series,
                    at - timedelta(seconds=i * 10),
                    cpu_percent=90,
                    health=2 + i % 2,
                    restarts=1,
                )

    def queries(at):
        with CaptureQueriesContext(connection) as captured:
            evaluate(at, send=False)
        return len(captured)

    # Each measured pass opens alerts and updates open ones: the same work, more rows.
    grow(["a", "b"], t0)
    evaluate(t0, send=False)
    grow(["c", "d"], t0 + timedelta(seconds=2))
    first = queries(t0 + timedelta(seconds=2))
    grow([f"n{i}" for i in range(10)], t0 + timedelta(seconds=5))
    second = queries(t0 + timedelta(seconds=5))
    assert Alert.objects.filter(state="firing").count() == 42
    assert first == second, (first, second)
    print(f"queries per pass: {second} (3 rules, 14 containers, 42 alerts)")


def test_a_disabled_rule_resolves_its_open_alerts(tenant_a, env, owner):
    rule = cpu_rule(tenant_a, owner, duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    sample(container_series(tenant_a, env, "w", now=t0), t0, cpu_percent=90)
    evaluate(t0, send=False)
    services.update_rule(owner, rule, {"enabled": False})
    assert Alert.objects.get().state == "resolved"


def test_route_rates_and_error_percent_from_the_two_newest_rows(tenant_a, env, owner):
    from apps.monitoring.models import RouteSample, Series

    services.create_rule(
        owner,
        tenant_a,
        {
            "name": "errors",
            "kind": "metric",
            "metric": "error_percent",
            "comparison": "gt",
            "threshold": 10,
        },
    )
    services.create_rule(
        owner,
        tenant_a,
        {
            "name": "traffic",
            "kind": "metric",
            "metric": "requests_rate",
            "comparison": "lt",
            "threshold": 1,
        },
    )
    t0 = timezone.now().replace(microsecond=0)
    route = Series.objects.create(
        kind=Series.Kind.ROUTE,
        key="r7",
        tenant=tenant_a,
        environment_pk=env.pk,
        name="shop.example/",
        route_pk=7,
        first_seen_at=t0,
        last_seen_at=t0,
    )
    RouteSample.objects.create(
        series=route, tier=0, at=t0 - timedelta(seconds=10), requests=100, errors=0
    )
    RouteSample.objects.create(series=route, tier=0, at=t0, requests=200, errors=20)
    evaluate(t0, send=False)
    alert = Alert.objects.get()  # 10 requests/s is not "lt 1"; 20% errors is "gt 10"
    assert (alert.rule.name, alert.subject, round(alert.value, 2)) == (
        "errors",
        "shop.example/",
        20,
    )


def test_a_pass_that_crashes_half_way_leaves_nothing_and_the_next_one_does_it_all(
    tenant_a, env, owner, webhook, monkeypatch
):
    from apps.alerts import evaluation

    cpu_rule(tenant_a, owner, [webhook], duration_seconds=0)
    t0 = timezone.now().replace(microsecond=0)
    sample(container_series(tenant_a, env, "w", now=t0), t0, cpu_percent=90)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(evaluation, "_queue_deliveries", crash)
        with pytest.raises(RuntimeError):
            evaluate(t0, send=False)
    assert not Alert.objects.exists()  # the alerts written before the crash rolled back
    evaluate(t0, send=False)
    assert Alert.objects.get().state == "firing" and Delivery.objects.count() == 1
