"""Start ordering on the real engine: a dependency's own health test, run by Berth
through exec right after its start, lets the dependents start before Docker's first
scheduled probe; a test that does not pass keeps them waiting, and Docker's status stays
what the stack and its rows show."""

from __future__ import annotations

from datetime import datetime

import pytest

from apps.deployments import readiness, reconciler
from apps.deployments.models import Container, Stack
from apps.hosts.engine import get_engine
from apps.hosts.models import Host
from tests.fixtures.engine import docker, engine_containers, make_stack, slots

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

# Docker's first probe of db runs one interval (15 s) after its start: long after Berth's
# own run of the same test, as soon as httpd answers. Each run (Berth's or Docker's)
# appends a line to /tmp/runs, so the test can count them.
EARLY = """
services:
  db:
    image: ${IMAGE}
    command: ["sh", "-c", "echo ok > /www/index.html; exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD-SHELL", "echo run >> /tmp/runs; wget -q -O /dev/null http://127.0.0.1/"]
      interval: 15s
    stop_grace_period: 1s
  api:
    image: ${IMAGE}
    command: ["sh", "-c", "wget -q -O /tmp/seen http://db/ || exit 3; exec sleep 3600"]
    depends_on:
      db: {condition: service_healthy}
    stop_grace_period: 1s
"""

# A CMD test that never passes: neither Berth's runs nor Docker's say healthy, and
# Docker's "unhealthy" (after 2 failed probes) fails the wait.
FAILING = """
services:
  db:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "sh", "-c", "echo run >> /tmp/runs; exit 1"]
      interval: 1s
      retries: 2
    stop_grace_period: 1s
  api:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on:
      db: {condition: service_healthy}
    stop_grace_period: 1s
"""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")


def by_service(stack: Stack) -> dict[str, dict]:
    return {c["Config"]["Labels"]["io.berth.service"]: c for c in engine_containers(stack)}


def test_dependents_start_once_berths_run_of_the_test_passes(environment, image):
    stack = make_stack(environment, "early", EARLY, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    found = by_service(stack)
    db, api = found["db"], found["api"]
    docker_probes = db["State"]["Health"]["Log"]
    assert docker_probes, "the stack is healthy only once Docker says db is"
    # api started before Docker ran db's test even once (its first probe comes one
    # interval after the start), and it reached db (its command exits 3 otherwise).
    assert parse_time(api["State"]["StartedAt"]) < parse_time(docker_probes[0]["Start"])
    assert docker("exec", api["Id"], "cat", "/tmp/seen") == "ok"
    assert api["RestartCount"] == 0
    # db's test ran more often than Docker ran it: Berth's run through exec.
    runs = docker("exec", db["Id"], "cat", "/tmp/runs").splitlines()
    assert len(runs) > len(docker_probes)
    # What users see is Docker's health.
    rows = dict(Container.objects.filter(stack=stack).values_list("service__name", "health"))
    assert rows == {"db": "healthy", "api": ""}


def test_a_test_that_does_not_pass_keeps_the_dependents_waiting(environment, image):
    stack = make_stack(environment, "waiting", FAILING, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.FAILED
    assert "db is unhealthy" in stack.state_reason
    assert slots(stack) == [("db", "1")]  # api was never created
    (db,) = engine_containers(stack)
    assert db["State"]["Health"]["Status"] == "unhealthy"  # Docker's verdict decided
    runs = docker("exec", db["Id"], "cat", "/tmp/runs").splitlines()
    assert len(runs) > len(db["State"]["Health"]["Log"])  # Berth's runs came first


def test_early_probe_judges_only_starting_containers_with_a_test(environment, image):
    """A container without a health check is judged by its state alone (no run); a
    run that outlives its timeout does not pass."""
    compose = """
    services:
      plain:
        image: ${IMAGE}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
    """
    stack = make_stack(environment, "plain", compose, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    host = Host.objects.get(name="local")
    with get_engine(host) as engine:
        (listed,) = engine.list_managed({"stack": str(stack.pk)})
        early = readiness.EarlyProbe(engine)
        assert early.health(listed) == ""
        assert early.states == {} and early.next_in() is None
        assert engine.health_test(listed.id) is None
        slow = engine.run_check(listed.id, ("sleep", "5"), 0.5)
        assert slow.exit_code is None and not slow.passed
        failed = engine.run_check(listed.id, ("sh", "-c", "echo no; exit 3"), 5)
        assert (failed.exit_code, failed.output) == (3, "no")
        assert engine.run_check(listed.id, ("true",), 5).passed


# Two dependents in the same start wave, each waiting on a different dependency: `quick`
# is ready at once, `broken` never is. The one whose dependency is met starts anyway.
SPLIT = """
services:
  quick:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    stop_grace_period: 1s
  broken:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    healthcheck: {test: ["CMD", "false"], interval: 1s, retries: 2}
    stop_grace_period: 1s
  a:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on: {quick: {condition: service_healthy}}
    stop_grace_period: 1s
  b:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on: {broken: {condition: service_healthy}}
    stop_grace_period: 1s
"""


def test_each_service_starts_once_its_own_dependencies_are_met(environment, image):
    stack = make_stack(environment, "split", SPLIT, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.FAILED
    assert stack.state_reason.count("broken is unhealthy") == 1, stack.state_reason
    # `a` did not wait for `broken`, which `b` needs: b was never created.
    assert slots(stack) == [("a", "1"), ("broken", "1"), ("quick", "1")]
