"""The pure arithmetic of the metrics tiers: parsing, tier choice, buckets, aggregates,
counters and CPU %, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.monitoring import tiers
from apps.monitoring.tiers import Tier

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
DEFAULT = tiers.parse_tiers("10:86400,60:604800,600:7776000")


def test_default_tiers_are_ten_seconds_a_day_a_minute_a_week_ten_minutes_ninety_days():
    expected = [Tier(0, 10, 86400), Tier(1, 60, 604800), Tier(2, 600, 7776000)]
    assert expected == DEFAULT


@pytest.mark.parametrize(
    "text",
    ["", "10", "ten:60", "0:60", "60:10", "10:86400,15:604800", "10:86400,60:3600"],
)
def test_bad_tiers_are_refused_naming_the_setting(text):
    with pytest.raises(ValueError, match="BERTH_METRICS_TIERS"):
        tiers.parse_tiers(text)


@pytest.mark.parametrize(
    ("back", "span", "expected"),
    [
        (timedelta(hours=1), timedelta(hours=1), 0),  # an hour: raw (360 points)
        (timedelta(hours=6), timedelta(hours=6), 1),  # 2,160 raw points: too many
        (timedelta(days=2), timedelta(hours=1), 1),  # raw rows of two days ago are gone
        (timedelta(days=7), timedelta(days=7), 2),  # a week in minutes: 10,080 points
        (timedelta(days=30), timedelta(days=1), 2),
        (timedelta(days=365), timedelta(days=1), 2),  # beyond everything: the coarsest
    ],
)
def test_choose_tier_takes_the_finest_that_holds_the_start_in_few_points(back, span, expected):
    start = T0 - back
    assert tiers.choose_tier(DEFAULT, start, start + span, now=T0).index == expected


def test_bucket_start_aligns_on_the_step():
    at = T0 + timedelta(seconds=125)
    assert tiers.bucket_start(at, 60) == T0 + timedelta(seconds=120)
    assert tiers.bucket_start(at, 600) == T0


def test_complete_until_leaves_the_source_tier_time_to_write():
    now = T0 + timedelta(seconds=65)
    # 65 s - 2 x 10 s = 45 s: the minute bucket starting at T0 is not complete yet
    assert tiers.complete_until(now, DEFAULT[1], DEFAULT[0]) == T0
    assert tiers.complete_until(now + timedelta(seconds=20), DEFAULT[1], DEFAULT[0]) == T0 + (
        timedelta(seconds=60)
    )


def test_aggregate_weights_averages_by_samples_and_keeps_counters_last():
    spec = {"cpu": "avg", "cpu_max": "max", "rx": "last", "restarts": "sum"}
    rows = [
        {"samples": 6, "cpu": 10.0, "cpu_max": 30.0, "rx": 100, "restarts": 1},
        {"samples": 2, "cpu": 50.0, "cpu_max": 90.0, "rx": 40, "restarts": 0},  # rx reset
    ]
    out = tiers.aggregate(rows, spec)
    assert out == {"samples": 8, "cpu": 20.0, "cpu_max": 90.0, "rx": 40, "restarts": 1}


def test_aggregate_skips_missing_values():
    out = tiers.aggregate([{"cpu": None}, {"cpu": 4.0}], {"cpu": "avg"})
    assert out["cpu"] == 4.0
    assert tiers.aggregate([{"cpu": None}], {"cpu": "max"})["cpu"] is None


def test_counter_rates_read_a_drop_as_a_reset():
    points = [(T0, 100), (T0 + timedelta(seconds=10), 300), (T0 + timedelta(seconds=20), 50)]
    assert tiers.rates(points) == [
        (T0 + timedelta(seconds=10), 20.0),
        (T0 + timedelta(seconds=20), 5.0),
    ]
    assert tiers.counter_delta(None, 7) == 0


def test_cpu_percent_between_two_readings():
    assert tiers.cpu_percent(None, T0, 5) is None
    before = (T0, 1_000_000_000)
    assert tiers.cpu_percent(before, T0 + timedelta(seconds=10), 6_000_000_000) == 50.0
    assert tiers.cpu_percent(before, T0 + timedelta(seconds=10), 10) is None  # restarted


def test_restarts_leave_out_a_new_containers_first_start():
    since = T0.timestamp()
    assert tiers.restarts(1, created=since + 3, since=since) == 0
    assert tiers.restarts(2, created=since + 3, since=since) == 1
    assert tiers.restarts(2, created=since - 100, since=since) == 2
    assert tiers.restarts(0, created=since + 3, since=since) == 0
    # Created just before the window (its whole second), started inside it: no restart.
    assert tiers.restarts(1, created=since - 0.4, since=since) == 0
    assert tiers.restarts(1, created=since - 30, since=since) == 1
