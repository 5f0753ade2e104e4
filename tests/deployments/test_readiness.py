"""The pure parts of the early readiness check: which test the engine would run, and
the back-off between Berth's runs (no engine needed)."""

from __future__ import annotations

from apps.deployments.readiness import MAX_RUNS, next_delay
from apps.hosts.engine.checks import DEFAULT_INTERVAL, HealthTest, health_test_of

NS = 1_000_000_000


def attrs(test, shell=None, **timings) -> dict:
    config: dict = {"Healthcheck": {"Test": test, **timings}}
    if shell is not None:
        config["Shell"] = shell
    return {"Config": config}


def test_cmd_runs_as_written_and_cmd_shell_through_the_containers_shell():
    assert health_test_of(attrs(["CMD", "/app/healthy.sh", "--quick"])) == HealthTest(
        argv=("/app/healthy.sh", "--quick")
    )
    shell = health_test_of(attrs(["CMD-SHELL", "wget -q http://127.0.0.1/ || exit 1"]))
    assert shell is not None
    assert shell.argv == ("/bin/sh", "-c", "wget -q http://127.0.0.1/ || exit 1")
    custom = health_test_of(attrs(["CMD-SHELL", "check"], shell=["/bin/ash", "-ec"]))
    assert custom is not None and custom.argv == ("/bin/ash", "-ec", "check")


def test_timings_come_from_the_check_or_dockers_defaults():
    timed = health_test_of(attrs(["CMD", "true"], Interval=2 * NS, Timeout=NS // 2))
    assert timed is not None and (timed.interval, timed.timeout) == (2.0, 0.5)
    plain = health_test_of(attrs(["CMD", "true"]))
    assert plain is not None and plain.interval == DEFAULT_INTERVAL


def test_no_test_disabled_or_empty_is_none():
    assert health_test_of({"Config": {}}) is None
    assert health_test_of(attrs(["NONE"])) is None
    assert health_test_of(attrs([])) is None
    assert health_test_of(attrs(["CMD"])) is None


def test_back_off_doubles_until_the_interval_then_docker_decides():
    delays = []
    runs = 1
    while (delay := next_delay(runs, 2.0)) is not None:
        delays.append(delay)
        runs += 1
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert next_delay(1, 0.1) is None  # an interval this short: Docker's probes suffice
    assert next_delay(MAX_RUNS, 3600.0) is None
