"""Rollouts against the real engine (and, for traffic, the tests' own frontier): batches,
health before drain, automatic rollback, crash safety, canary weight/promote/abort."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone

from apps.activity.models import Event
from apps.deployments import reconciler, rolling
from apps.deployments import rollout as rollouts
from apps.deployments.models import Container, Rollout, Stack
from apps.deployments.signals import frontier_changed
from apps.deployments.spec import berth_spec, build_spec, project_from_spec
from apps.traffic import frontier as frontier_config
from tests.fixtures.engine import docker, engine_containers, make_stack, new_revision

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

WEB = """
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo ${VERSION} > /www/index.html; exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/${CHECK:-}"]
      interval: 1s
      retries: 2
      start_period: ${START:-0s}
    stop_grace_period: 1s
    deploy:
      replicas: ${REPLICAS:-3}
      update_config:
        parallelism: ${BATCH:-1}
        order: ${ORDER:-start-first}
        monitor: ${MONITOR:-30s}
        failure_action: ${FAILURE:-rollback}
"""


def spec_of(environment, image, **variables):
    return build_spec(WEB, {"IMAGE": image, "VERSION": "v1", **variables}, environment)


def deploy(environment, image, name="roll", **variables) -> Stack:
    stack = make_stack(environment, name, WEB, {"IMAGE": image, "VERSION": "v1", **variables})
    reconciler.reconcile_stack(stack.pk)
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    return stack


def revisions_running(stack) -> Counter:
    return Counter(c["Config"]["Labels"]["io.berth.revision"] for c in engine_containers(stack))


class HealthySampler:
    """Counts the stack's healthy containers every 50 ms in a thread (the engine's view)."""

    def __init__(self, stack):
        self.stack = stack
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            ids = docker(
                "ps",
                "-q",
                "--filter",
                f"label=io.berth.stack={self.stack.pk}",
                "--filter",
                f"label=io.berth.tenant={self.stack.tenant.slug}",
                "--filter",
                "health=healthy",
            )
            self.counts.append(len(ids.split()))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def test_redeploy_of_three_replicas_rolls_one_batch_at_a_time(environment, image):
    stack = deploy(environment, image)
    old = {c["Id"] for c in engine_containers(stack)}
    new_revision(stack, spec_of(environment, image, VERSION="v2"))
    with HealthySampler(stack) as sampler:
        reconciler.reconcile_stack(stack.pk)
    after = engine_containers(stack)
    assert len(after) == 3 and not old & {c["Id"] for c in after}
    assert revisions_running(stack) == {"2": 3}
    # Start-first, batch 1: never fewer than 3 - 1 healthy while it rolled.
    assert sampler.counts and min(sampler.counts) >= 2, sampler.counts
    rollout = Rollout.objects.get(stack=stack)
    assert (rollout.state, rollout.strategy) == (Rollout.State.DONE, "rolling")
    assert (rollout.from_revision, rollout.to_revision) == (1, 2)
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY


def test_stop_first_with_a_batch_of_every_replica_replaces_all_at_once(environment, image):
    stack = deploy(environment, image, ORDER="stop-first", BATCH="0")
    new_revision(stack, spec_of(environment, image, VERSION="v2", ORDER="stop-first", BATCH="0"))
    with HealthySampler(stack) as sampler:
        reconciler.reconcile_stack(stack.pk)
    assert revisions_running(stack) == {"2": 3}
    assert 0 in sampler.counts  # what the user chose: all at once
    assert Rollout.objects.get(stack=stack).state == Rollout.State.DONE


def test_an_upgrade_that_never_gets_healthy_is_rolled_back_by_itself(environment, image):
    stack = deploy(environment, image)
    old = sorted(c["Id"] for c in engine_containers(stack))
    new_revision(stack, spec_of(environment, image, VERSION="v2", CHECK="missing"))
    reconciler.reconcile_stack(stack.pk)

    stack = Stack.objects.get(pk=stack.pk)
    assert stack.current_revision.number == 1  # back to what the old containers run
    assert sorted(c["Id"] for c in engine_containers(stack)) == old  # never stopped
    assert revisions_running(stack) == {"1": 3}
    rollout = Rollout.objects.get(stack=stack)
    assert rollout.state == Rollout.State.ROLLED_BACK
    assert "did not become healthy" in rollout.message and "rolled back to r1" in rollout.message
    event = Event.objects.get(tenant=stack.tenant, action="rollout.rolled_back")
    assert event.outcome == Event.Outcome.FAILURE and "rolled back to r1" in event.message
    assert stack.state == Stack.State.HEALTHY  # the next pass found r1 running


def test_a_batch_still_starting_when_monitor_ends_is_rolled_back(environment, image):
    stack = deploy(environment, image)
    old = sorted(c["Id"] for c in engine_containers(stack))
    # Failing checks inside a long start period: "starting" until monitor (3 s) ends.
    spec = spec_of(environment, image, VERSION="v2", CHECK="x", START="60s", MONITOR="3s")
    new_revision(stack, spec)
    reconciler.reconcile_stack(stack.pk)
    rollout = Rollout.objects.get(stack=stack)
    assert rollout.state == Rollout.State.ROLLED_BACK
    assert "not healthy within 3 s" in rollout.message
    assert sorted(c["Id"] for c in engine_containers(stack)) == old


def test_pause_leaves_the_service_as_it_is_until_the_next_change(environment, image):
    stack = deploy(environment, image, FAILURE="pause")
    old = sorted(c["Id"] for c in engine_containers(stack))
    new_revision(stack, spec_of(environment, image, VERSION="v2", CHECK="x", FAILURE="pause"))
    reconciler.reconcile_stack(stack.pk)
    rollout = Rollout.objects.get(stack=stack)
    assert rollout.state == Rollout.State.FAILED and "paused" in rollout.message
    assert Stack.objects.get(pk=stack.pk).current_revision.number == 2
    reconciler.reconcile_stack(stack.pk)  # the periodic pass does not try again
    assert sorted(c["Id"] for c in engine_containers(stack)) == old
    assert Rollout.objects.filter(stack=stack).count() == 1


def test_a_pass_killed_between_batches_is_finished_by_the_next_one(environment, image, monkeypatch):
    stack = deploy(environment, image)
    new_revision(stack, spec_of(environment, image, VERSION="v2"))

    class Crash(BaseException):
        """Stands for SIGKILL: nothing after it runs, not even the lease release."""

    def crash(self):
        raise Crash

    monkeypatch.setattr(rolling.RollingUpdate, "pause", crash)
    with pytest.raises(Crash):
        reconciler.reconcile_stack(stack.pk)
    assert revisions_running(stack) == {"1": 2, "2": 1}
    first = Rollout.objects.get(stack=stack)
    assert first.state == Rollout.State.RUNNING

    monkeypatch.undo()
    Stack.objects.filter(pk=stack.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    reconciler.reconcile_stack(stack.pk)
    assert revisions_running(stack) == {"2": 3}
    assert sorted(
        int(c["Config"]["Labels"]["io.berth.replica"]) for c in engine_containers(stack)
    ) == [
        1,
        2,
        3,
    ]
    assert list(Rollout.objects.filter(stack=stack).values_list("pk", "state")) == [
        (first.pk, Rollout.State.DONE)
    ]
    connection.close()


def test_a_routed_service_is_drained_before_its_containers_stop(environment, image, settings):
    """The drain protocol: draining=True, the frontier told, then stop; the new batch was
    in the frontier's rows (mirrored, healthy) before the old one was drained."""
    from apps.deployments.models import Route, Service

    settings.BERTH_FRONTIER_DRAIN_SECONDS = 0.2
    stack = deploy(environment, image, REPLICAS="2")
    service = Service.objects.get(stack=stack, name="web")
    Route.objects.create(
        tenant=stack.tenant, stack=stack, service=service, hostname="drain.test", port=80
    )
    old = {c["Id"] for c in engine_containers(stack)}
    seen = []

    @receiver(frontier_changed, weak=False, dispatch_uid="test-drain")
    def record(sender, stack_id=None, reason="", **kwargs):
        rows = Container.objects.filter(stack_id=stack_id)
        draining = set(rows.filter(draining=True).values_list("engine_id", flat=True))
        healthy_new = rows.filter(revision=2, health="healthy", draining=False).count()
        running = {c["Id"] for c in engine_containers(stack, "--filter", "status=running")}
        seen.append((reason, draining, draining <= running, healthy_new))

    try:
        new_revision(stack, spec_of(environment, image, VERSION="v2", REPLICAS="2"))
        reconciler.reconcile_stack(stack.pk)
    finally:
        frontier_changed.disconnect(dispatch_uid="test-drain")
    drains = [s for s in seen if s[0] == "drain"]
    assert len(drains) == 2  # one per batch
    for index, (_, draining, still_running, healthy_new) in enumerate(drains):
        assert draining and draining <= old and still_running
        assert healthy_new >= index + 1  # its replacement already served
    joins = [i for i, s in enumerate(seen) if s[0] == "join"]
    assert joins and joins[0] < seen.index(drains[0])
    assert revisions_running(stack) == {"2": 2}


# --- through the frontier: requests during rollouts --------------------------------------------

ROUTED = """
services:
  web:
    image: berth-demo/web:${TAG}
    stop_grace_period: 2s
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/${CHECK:-health}"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: ${REPLICAS:-3}
"""
VERSION = re.compile(r" - web (1\.\d)</title>")


def routed_spec(environment, hostname: str, upgrade: dict | None = None, **variables) -> dict:
    """The spec a template with this route and upgrade setting renders (spec["berth"])."""
    values = {"TAG": "1.0", **variables}
    spec = build_spec(ROUTED, values, environment)
    routes = [{"hostname": hostname, "path": "/", "port": 8080}]
    settings = {"web": {"routes": routes, "upgrade": upgrade or {"batch_size": 1}}}
    spec["berth"] = berth_spec(project_from_spec(spec), settings, values)
    return spec


def routed_stack(environment, frontier, hostname: str, **kwargs) -> Stack:
    """A 3-replica berth-demo/web:1.0 behind `hostname` on the tests' frontier."""
    from apps.deployments.models import Route, Service

    stack = make_stack(environment, hostname.partition(".")[0], ROUTED, {"TAG": "1.0"})
    stack.current_revision.spec = routed_spec(environment, hostname, **kwargs)
    stack.current_revision.save()
    reconciler.reconcile_stack(stack.pk)
    service = Service.objects.get(stack=stack, name="web")
    Route.objects.create(
        tenant=stack.tenant, stack=stack, service=service, hostname=hostname, port=8080
    )
    assert frontier_config.apply("test route").ok
    assert versions_of(frontier, hostname, 20) == {"1.0": 20}
    return stack


def versions_of(frontier, hostname: str, count: int) -> Counter:
    found: Counter = Counter()
    for _ in range(count):
        status, body = frontier.get(hostname)
        match = VERSION.search(body)
        found[match.group(1) if status == 200 and match else f"HTTP {status}"] += 1
    return found


class Client:
    """A bounded client loop: one request at a time, a fresh connection each, through
    the frontier with the route's Host header; every answer (or error) kept in order."""

    def __init__(self, frontier, hostname: str, limit: int = 20000):
        self.frontier, self.hostname, self.limit = frontier, hostname, limit
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set() and len(self.answers) < self.limit:
            try:
                status, body = self.frontier.get(self.hostname)
                match = VERSION.search(body)
                self.answers.append(match.group(1) if status == 200 and match else f"{status}")
            except OSError as exc:
                self.answers.append(f"error: {exc}")

    @property
    def failures(self) -> list[str]:
        return [a for a in self.answers if a not in ("1.0", "1.1")]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def test_a_rolling_upgrade_under_load_drops_no_request(environment, frontier, web_images, settings):
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 1
    stack = routed_stack(environment, frontier, "roll.rollout.test")
    new_revision(stack, routed_spec(environment, "roll.rollout.test", TAG="1.1"))
    with Client(frontier, "roll.rollout.test") as client:
        reconciler.reconcile_stack(stack.pk)
        time.sleep(0.5)
    print(f"\n{len(client.answers)} requests during the rolling upgrade: {Counter(client.answers)}")
    assert client.failures == []
    assert client.answers[0] == "1.0" and client.answers[-1] == "1.1"
    assert versions_of(frontier, "roll.rollout.test", 30) == {"1.1": 30}
    assert Rollout.objects.get(stack=stack).state == Rollout.State.DONE


def test_an_upgrade_that_never_gets_healthy_gets_no_request(
    environment, frontier, web_images, settings
):
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 1
    stack = routed_stack(environment, frontier, "sick.rollout.test")
    new_revision(stack, routed_spec(environment, "sick.rollout.test", TAG="1.1", CHECK="nope"))
    with Client(frontier, "sick.rollout.test") as client:
        reconciler.reconcile_stack(stack.pk)
    assert client.answers and client.failures == []
    assert "1.1" not in client.answers  # no request reached the sick revision
    assert Rollout.objects.get(stack=stack).state == Rollout.State.ROLLED_BACK
    assert Stack.objects.get(pk=stack.pk).current_revision.number == 1


CANARY = {"strategy": "canary", "batch_size": 1, "canary_weight": 20}


def start_canary(environment, frontier, hostname: str) -> tuple[Stack, Rollout]:
    stack = routed_stack(environment, frontier, hostname, upgrade=CANARY)
    new_revision(stack, routed_spec(environment, hostname, upgrade=CANARY, TAG="1.1"))
    reconciler.reconcile_stack(stack.pk)
    rollout = Rollout.objects.get(stack=stack)
    assert (rollout.state, rollout.canary_weight) == (Rollout.State.CANARY, 20)
    assert revisions_running(stack) == {"1": 3, "2": 1}  # beside the old ones
    reconciler.reconcile_stack(stack.pk)  # the periodic pass leaves the canary alone
    assert revisions_running(stack) == {"1": 3, "2": 1}
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    return stack, rollout


def test_a_canary_at_20_percent_then_promoted(environment, frontier, web_images, owner, settings):
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 1
    stack, rollout = start_canary(environment, frontier, "canary.rollout.test")
    shares = versions_of(frontier, "canary.rollout.test", 500)
    print(f"\ncanary at 20%: {shares}")
    assert set(shares) == {"1.0", "1.1"}
    assert 15 <= 100 * shares["1.1"] / 500 <= 25

    rollouts.set_canary_weight(owner, rollout, 50)
    shares = versions_of(frontier, "canary.rollout.test", 200)
    assert 40 <= 100 * shares["1.1"] / 200 <= 60, shares

    rollouts.promote(owner, rollout)
    with Client(frontier, "canary.rollout.test") as client:
        reconciler.reconcile_stack(stack.pk)
    assert client.failures == []
    assert versions_of(frontier, "canary.rollout.test", 100) == {"1.1": 100}
    assert revisions_running(stack) == {"2": 3}
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.DONE


def test_a_canary_aborted_leaves_only_the_old_revision(
    environment, frontier, web_images, owner, settings
):
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 1
    stack, rollout = start_canary(environment, frontier, "abort.rollout.test")
    running = {c["Id"] for c in engine_containers(stack)}
    Stack.objects.filter(pk=stack.pk).update(operation="restart")
    reconciler.reconcile_stack(stack.pk)  # a restart leaves a running canary alone
    assert {c["Id"] for c in engine_containers(stack)} == running
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.CANARY
    rollouts.abort(owner, rollout)
    with Client(frontier, "abort.rollout.test") as client:
        reconciler.reconcile_stack(stack.pk)
    assert client.failures == []
    assert versions_of(frontier, "abort.rollout.test", 100) == {"1.0": 100}
    assert revisions_running(stack) == {"1": 3}
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.ABORTED
    assert Stack.objects.get(pk=stack.pk).current_revision.number == 1


@pytest.mark.parametrize("desired", [Stack.Desired.STOPPED, Stack.Desired.REMOVED])
def test_stopping_or_removing_a_stack_ends_its_canary(
    environment, frontier, web_images, settings, desired
):
    """A running canary must not keep containers up after a stop, nor block a removal."""
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 0.2
    stack, rollout = start_canary(environment, frontier, f"{desired}.rollout.test")
    Stack.objects.filter(pk=stack.pk).update(desired_state=desired)
    reconciler.reconcile_stack(stack.pk)
    assert engine_containers(stack, "--filter", "status=running") == []
    if desired == Stack.Desired.REMOVED:
        assert not Stack.objects.filter(pk=stack.pk).exists()  # its rollouts with it
    else:
        assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.ABORTED


def test_restarting_a_routed_stack_replaces_its_containers_without_a_lost_request(
    environment, frontier, web_images, settings
):
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 1
    stack = routed_stack(environment, frontier, "restart.rollout.test")
    before = {c["Id"] for c in engine_containers(stack)}
    Stack.objects.filter(pk=stack.pk).update(operation="restart")
    with Client(frontier, "restart.rollout.test") as client:
        reconciler.reconcile_stack(stack.pk)
    assert client.answers and client.failures == []
    after = {c["Id"] for c in engine_containers(stack)}
    assert len(after) == 3 and not before & after  # recreated, one batch at a time
    assert Stack.objects.get(pk=stack.pk).operation == ""


def test_a_scale_down_keeps_the_lowest_replicas_and_is_recorded(environment, image):
    stack = deploy(environment, image)
    first = next(
        c["Id"]
        for c in engine_containers(stack)
        if c["Config"]["Labels"]["io.berth.replica"] == "1"
    )
    new_revision(stack, spec_of(environment, image, REPLICAS="1"))
    reconciler.reconcile_stack(stack.pk)
    assert [c["Id"] for c in engine_containers(stack)] == [first]
    rollout = Rollout.objects.get(stack=stack)
    assert (rollout.state, rollout.message) == (Rollout.State.DONE, "scale down by 2")
    assert (rollout.from_revision, rollout.to_revision) == (1, 2)
