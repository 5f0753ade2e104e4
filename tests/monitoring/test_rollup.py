"""Downsampling and retention on the database: rollups are idempotent (twice, or again
after a crash before the mark), expired rows go, `series` reads the tier the range needs
and sums an object's series; tenancy through `visible_to`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.deployments.models import Service as ServiceModel
from apps.monitoring import queries, rollup
from apps.monitoring.models import ContainerSample, RollupMark, Series

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def make_series(tenant, key: str, stack_pk: int = 1, service: str = "web") -> Series:
    return Series.objects.create(
        kind=Series.Kind.CONTAINER,
        key=key,
        tenant=tenant,
        tenant_slug=tenant.slug,
        stack_pk=stack_pk,
        service_name=service,
        name=key,
        first_seen_at=T0,
        last_seen_at=T0 + timedelta(minutes=10),
    )


def raw(series: Series, minutes: int, *, cpu: float, rx: int, restarts: int = 0) -> None:
    """Six raw rows a minute (every 10 s) from T0 for `minutes` minutes."""
    ContainerSample.objects.bulk_create(
        ContainerSample(
            series=series,
            tier=0,
            at=T0 + timedelta(seconds=10 * i),
            cpu_percent=cpu + i % 6,
            cpu_percent_max=cpu + i % 6,
            memory_bytes=1000,
            memory_max_bytes=1000 + i,
            memory_limit_bytes=4096,
            net_rx_bytes=rx * i,
            restarts=restarts if i == 3 else 0,
        )
        for i in range(minutes * 6)
    )


def minute_rows(series: Series) -> list[tuple]:
    return list(
        ContainerSample.objects.filter(series=series, tier=1)
        .order_by("at")
        .values_list("at", "samples", "cpu_percent", "memory_max_bytes", "net_rx_bytes", "restarts")
    )


def test_rollup_aggregates_minutes_and_is_idempotent(tenant_a):
    series = make_series(tenant_a, "c1:abc")
    raw(series, 5, cpu=10.0, rx=100, restarts=2)
    now = T0 + timedelta(minutes=5, seconds=30)
    first = rollup.run(now=now)
    rows = minute_rows(series)
    # 5 m 30 s - 20 s of slack: the buckets of minutes 0 to 4 are complete
    assert [r[0] for r in rows] == [T0 + timedelta(minutes=m) for m in range(5)]
    at, samples, cpu, memory_max, rx, restarts = rows[0]
    assert (samples, cpu, memory_max, rx, restarts) == (6, 12.5, 1005, 500, 2)
    assert first.written == 5
    # Twice: nothing new; a crash before the mark: the same rows again, no duplicate.
    assert rollup.run(now=now).written == 0
    RollupMark.objects.all().delete()
    rollup.run(now=now)
    assert minute_rows(series) == rows
    # Ten-minute tier from the minutes, once its bucket is complete.
    rollup.run(now=T0 + timedelta(minutes=21))
    ten = ContainerSample.objects.get(series=series, tier=2)
    assert (ten.at, ten.samples, ten.restarts) == (T0, 30, 2)


def test_retention_deletes_expired_rows_and_forgets_empty_series(tenant_a):
    series = make_series(tenant_a, "c1:old")
    raw(series, 2, cpu=1.0, rx=1)
    rollup.run(now=T0 + timedelta(minutes=3))
    assert ContainerSample.objects.filter(series=series, tier=1).count() == 2
    # A day and a bit later: the raw rows are gone, the minutes stay (7 days).
    rollup.run(now=T0 + timedelta(days=1, minutes=5))
    assert not ContainerSample.objects.filter(series=series, tier=0).exists()
    assert ContainerSample.objects.filter(series=series, tier=1).count() == 2
    # Past the longest retention: the series itself goes with its last rows.
    rollup.run(now=T0 + timedelta(days=91))
    assert not Series.objects.filter(pk=series.pk).exists()


def test_series_picks_the_tier_by_range_and_sums_a_service(tenant_a):
    one = make_series(tenant_a, "c1:one", stack_pk=7)
    two = make_series(tenant_a, "c1:two", stack_pk=7)
    raw(one, 10, cpu=10.0, rx=100)
    raw(two, 10, cpu=20.0, rx=50)
    rollup.run(now=T0 + timedelta(minutes=11))
    now = T0 + timedelta(minutes=11)

    service = ServiceModel(stack_id=7, name="web")  # series_of reads its stack and name
    recent = queries.series(service, "cpu_percent", T0, T0 + timedelta(seconds=50), now=now)
    assert recent[0] == (T0, 30.0)  # raw rows, the two containers summed
    rx = queries.series(
        one, "net_rx_rate", T0 + timedelta(seconds=10), T0 + timedelta(minutes=1), now=now
    )
    assert {value for _, value in rx} == {10.0}  # 100 bytes every 10 s
    # From 25 hours back: raw rows of then would be gone, so the minute tier answers.
    week = queries.series(one, "cpu_percent", now - timedelta(hours=25), now, now=now)
    assert week[0] == (T0, 12.5)


def test_visible_to_hides_another_tenants_series(tenant_a, tenant_b, outsider, owner):
    mine = make_series(tenant_a, "c1:mine")
    make_series(tenant_b, "c1:theirs")
    assert list(Series.objects.visible_to(owner)) == [mine]
    assert (
        queries.series(
            mine,
            "cpu_percent",
            T0,
            T0 + timedelta(hours=1),
            queryset=Series.objects.visible_to(outsider),
        )
        == []
    )


def test_beat_runs_the_collector_and_the_rollup(settings):
    from apps.monitoring import tasks

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["monitoring.collect"]["task"] == tasks.collect.name
    assert schedule["monitoring.collect"]["schedule"] == settings.BERTH_METRICS_INTERVAL_SECONDS
    assert schedule["monitoring.rollup"]["task"] == tasks.roll_up.name
    assert tasks.collect() == 0  # no active host, no frontier: nothing to write
    assert tasks.roll_up() == 0


@pytest.mark.django_db(transaction=True)
def test_a_pass_finds_another_running_and_steps_aside():
    """Two passes at once would count the same restarts twice."""
    import psycopg
    from django.conf import settings as django_settings
    from django.db import connection

    from apps.monitoring import collector

    if connection.vendor != "postgresql":
        pytest.skip("the lock is PostgreSQL's; SQLite has one worker")
    params = connection.get_connection_params()
    with psycopg.connect(
        **{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")}
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [collector.ADVISORY_KEY])
        assert collector.collect().skipped
        other.execute("SELECT pg_advisory_unlock(%s)", [collector.ADVISORY_KEY])
        assert not collector.collect().skipped
    assert django_settings.BERTH_METRICS_INTERVAL_SECONDS > 0
