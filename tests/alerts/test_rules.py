"""The pure parts: the state machine of one alert, comparisons, flapping, back-off and
the webhook signature."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.alerts.rules import backoff, changes, holds, next_state, signature, verify

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_condition_with_a_duration_is_pending_until_it_has_held_that_long():
    assert next_state(None, True, None, at(0), 120) == "pending"
    assert next_state("pending", True, at(0), at(60), 120) == "pending"
    assert next_state("pending", True, at(0), at(120), 120) == "firing"
    assert next_state("firing", True, at(0), at(500), 120) == "firing"


def test_without_a_duration_it_fires_at_once():
    assert next_state(None, True, None, at(0), 0) == "firing"


def test_a_firing_alert_resolves_and_a_pending_one_is_dropped():
    assert next_state("firing", False, at(0), at(300), 120) == "resolved"
    assert next_state("pending", False, at(0), at(60), 120) is None
    assert next_state(None, False, None, at(0), 120) is None


def test_a_condition_that_comes_back_starts_its_duration_again():
    """pending -> dropped -> pending: the duration counts from the new start."""
    assert next_state("pending", False, at(0), at(60), 120) is None
    assert next_state(None, True, None, at(90), 120) == "pending"
    assert next_state("pending", True, at(90), at(180), 120) == "pending"
    assert next_state("pending", True, at(90), at(210), 120) == "firing"


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [("gt", 81, True), ("gt", 80, False), ("ge", 80, True), ("lt", 79, True), ("le", 81, False)],
)
def test_comparisons(comparison, value, expected):
    assert holds(comparison, value, 80) is expected


def test_a_value_not_measured_holds_nothing():
    assert holds("lt", None, 80) is False


def test_flapping_counts_changes_of_health():
    assert changes([2, 2, 3, 2, 3, 3]) == 3
    assert changes([2]) == 0
    assert changes([]) == 0


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n, 30, 300) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"event": "firing"}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k" * 16, 1700000000, body) == f"sha256={expected}"


def test_a_receiver_refuses_a_bad_signature_an_old_timestamp_or_another_body():
    body, secret = b"{}", b"s" * 20
    good = signature(secret, 1000, body)
    assert verify(secret, good, "1000", body, now=1010)
    assert not verify(secret, good, "1000", body, now=1000 + 301)  # replayed later
    assert not verify(secret, good, "1000", b"{ }", now=1010)
    assert not verify(b"x" * 20, good, "1000", body, now=1010)
    assert not verify(secret, good, "soon", body, now=1010)
