"""A pass gives up at its operation's deadline; a repair pass after an operation that
failed or expired long ago gets a fresh one (else the stack could never heal)."""

from datetime import UTC, datetime, timedelta

from apps.deployments.models import Stack
from apps.deployments.reconciler import default_timeout, pass_deadline

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def stack(**fields) -> Stack:
    return Stack(name="s", **fields)


def test_an_operation_keeps_its_deadline():
    deadline = NOW + timedelta(seconds=30)
    running = stack(operation="deploy", operation_deadline=deadline)
    assert pass_deadline(running, NOW) == deadline


def test_an_operation_past_its_deadline_gives_up():
    late = stack(operation="deploy", operation_deadline=NOW - timedelta(minutes=5))
    assert pass_deadline(late, NOW) < NOW


def test_an_operation_without_a_deadline_counts_from_its_start():
    started = NOW - timedelta(seconds=10)
    running = stack(operation="deploy", operation_started_at=started)
    assert pass_deadline(running, NOW) == started + timedelta(seconds=default_timeout())


def test_a_repair_pass_after_an_old_failed_operation_gets_a_fresh_deadline():
    healed = stack(
        operation="",
        operation_started_at=NOW - timedelta(hours=3),
        operation_deadline=NOW - timedelta(hours=2),
    )
    assert pass_deadline(healed, NOW) == NOW + timedelta(seconds=default_timeout())
