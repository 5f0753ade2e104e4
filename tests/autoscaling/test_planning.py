"""The autoscaler's arithmetic with plain numbers: out, in, cooldown, bounds, step,
hysteresis, and no decision without data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.autoscaling.planning import Settings, per_container, plan

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CPU50 = Settings(min_replicas=1, max_replicas=10, target=50, cooldown_seconds=60, step=2)


def decide(current, observed, settings=CPU50, samples=6, last=None):
    return plan(settings, current, observed, now=NOW, last_scaled_at=last, samples=samples)


def test_load_above_the_target_scales_out_proportionally():
    decision = decide(2, 75)  # 150 % of one container's target: 3
    assert (decision.action, decision.desired) == ("out", 3)
    assert decision.figures == {
        "current": 2, "observed": 75, "target": 50, "samples": 6, "wanted": 3, "desired": 3
    }  # fmt: skip
    assert "above the target" in decision.reason


def test_scale_out_is_bounded_by_the_step_and_the_maximum():
    assert decide(1, 100 * 5).desired == 3  # wants 10, step 2
    assert decide(9, 100).desired == 10  # wants 18, the maximum is 10
    assert decide(10, 100).action == "none"  # already at the maximum


def test_low_load_scales_in_by_at_most_the_step():
    decision = decide(6, 5)  # 30 in all: 1 container would do
    assert (decision.action, decision.desired) == ("in", 4)
    assert "below the target" in decision.reason


def test_scale_in_stops_at_the_minimum():
    settings = Settings(min_replicas=3, max_replicas=10, target=50, step=5)
    assert decide(5, 1, settings).desired == 3


def test_scale_in_keeps_the_remaining_containers_below_the_target_by_the_margin():
    # 3 x 31 = 93: two containers at 46.5 each would sit above 45 (50 less 10 %).
    assert decide(3, 31).action == "none"
    # 3 x 29 = 87: two at 43.5, below 45: one fewer.
    assert (decide(3, 29).action, decide(3, 29).desired) == ("in", 2)
    # Right at the target: nothing to do either way.
    assert decide(4, 50).action == "none"


def test_no_change_inside_the_cooldown_either_way():
    recent = NOW - timedelta(seconds=20)
    out = decide(2, 90, last=recent)
    assert (out.action, out.desired) == ("hold", 2) and "40 s left" in out.reason
    assert decide(4, 5, last=recent).action == "hold"
    assert decide(2, 90, last=NOW - timedelta(seconds=61)).action == "out"


def test_missing_data_makes_no_decision():
    assert decide(2, None, samples=0).action == "none"
    assert decide(2, None, samples=0).reason == "no metrics in the window"
    assert decide(2, 95, samples=1).reason == "too few samples yet"


def test_a_service_outside_its_bounds_is_brought_inside_whatever_the_data():
    settings = Settings(min_replicas=2, max_replicas=4, target=50, step=1, cooldown_seconds=600)
    below = plan(settings, 1, None, now=NOW, last_scaled_at=NOW)
    assert (below.action, below.desired) == ("out", 2)
    above = plan(settings, 9, 100, now=NOW, last_scaled_at=NOW, samples=6)
    assert (above.action, above.desired) == ("in", 4)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ({}, (None, 0)),
        ({NOW: [80.0, 40.0]}, (60.0, 1)),
        ({NOW: [80.0, 40.0], NOW + timedelta(seconds=10): [20.0]}, (40.0, 2)),
        ({NOW: []}, (None, 0)),
    ],
)
def test_per_container_is_the_mean_over_time_of_the_mean_over_containers(points, expected):
    assert per_container(points) == expected
