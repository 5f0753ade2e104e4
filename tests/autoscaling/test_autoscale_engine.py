"""Autoscaling on the real engine (issue 15): CPU load through the real frontier on the
demo image berth-demo/burner's /cgi-bin/burn scales the service out; once the load stops it scales
back in after its cooldown. The collector and the autoscaler are called directly
(beat's tasks are thin wrappers around them), the reconciler too."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.activity.models import Event
from apps.autoscaling import services as autoscaling
from apps.autoscaling.models import Autoscaler
from apps.deployments import reconciler
from apps.deployments import services as deployments
from apps.deployments.models import Route, Service, Stack
from apps.monitoring import collector
from apps.monitoring.models import RouteSample
from apps.traffic import frontier as frontier_config
from tests.fixtures.engine import engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

HOSTNAME = "burn.autoscale.localhost"
COMPOSE = """
services:
  web:
    image: berth-demo/burner:1.0
    cpus: 0.5
    stop_grace_period: 1s
"""


@pytest.fixture(scope="module")
def burner_image() -> None:
    """berth-demo/burner:1.0 (deploy/build-images.sh; well under a second when current)."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "build-images.sh"
    done = subprocess.run(
        ["bash", str(script), "berth-demo/burner:1.0"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


class Load:
    """Clients asking /cgi-bin/burn through the frontier in threads, until stopped (and
    at most `seconds`): a bounded load on loopback."""

    def __init__(self, frontier, clients: int = 4, seconds: float = 60.0):
        self.frontier, self.seconds = frontier, seconds
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, _ = self.frontier.get(HOSTNAME, "/cgi-bin/burn?ms=300", timeout=5)
            except OSError:
                status = 0
            self.answers.append(status)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def __exit__(self, *exc) -> None:
        self.stop()


def judge_until(pk: int, action: str, timeout: float) -> object:
    """Collect and evaluate every second or so until the autoscaler decides `action`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        time.sleep(1.05 - (time.time() % 1))  # rows are unique per second
        collector.collect()
        decision = autoscaling.evaluate(pk)
        seen.append((decision.action, decision.reason))
        if decision.action == action:
            return decision
    raise AssertionError(f"no scale {action} in {timeout}s: {seen[-5:]}")


def test_cpu_load_through_the_frontier_scales_out_and_back_in(
    environment, owner, frontier, burner_image, settings
):
    settings.BERTH_AUTOSCALING_WINDOW_SECONDS = 20
    settings.BERTH_METRICS_INTERVAL_SECONDS = 2
    started = time.monotonic()
    stack = make_stack(environment, "burner", COMPOSE)
    reconciler.reconcile_stack(stack.pk)
    service = Service.objects.get(stack=stack, name="web")
    Route.objects.create(
        tenant=stack.tenant, stack=stack, service=service, hostname=HOSTNAME, port=8080
    )
    assert frontier_config.apply("test").ok
    deadline = time.monotonic() + 30
    while frontier.get(HOSTNAME, "/cgi-bin/info")[0] != 200:
        assert time.monotonic() < deadline, "the route never answered"
        time.sleep(0.2)

    scaler = autoscaling.configure(
        owner,
        service,
        {
            "min_replicas": 1,
            "max_replicas": 3,
            "metric": "cpu",
            "target": 50,
            "cooldown_seconds": 8,
            "step": 2,
        },
    )

    with Load(frontier) as load:
        out = judge_until(scaler.pk, "out", timeout=30)
    assert out.desired >= 2 and out.figures["observed"] > 50, out
    assert load.answers and set(load.answers) == {200}, set(load.answers)
    assert RouteSample.objects.filter(series__route_pk__isnull=False, requests__gt=0).exists()
    event = Event.objects.get(action="autoscaling.scale_out", object_id=str(service.pk))
    assert event.data["observed"] > 50 and event.data["desired"] == out.desired
    scaled = Event.objects.filter(action="stack.scale", object_id=str(stack.pk)).get()
    assert "by autoscaling" in scaled.message and scaled.actor_name == "system"

    # A person's scale while autoscaling manages the service: refused, naming it.
    with pytest.raises(ValidationError, match="Autoscaling manages web"):
        deployments.scale(owner, Service.objects.get(pk=service.pk), 1)

    reconciler.reconcile_stack(stack.pk)
    assert len(engine_containers(stack, "--filter", "status=running")) == out.desired
    assert Stack.objects.get(pk=stack.pk).operation == ""

    out_at = Autoscaler.objects.get(pk=scaler.pk).last_scaled_at
    back = judge_until(scaler.pk, "in", timeout=40)
    in_at = Autoscaler.objects.get(pk=scaler.pk).last_scaled_at
    assert (in_at - out_at).total_seconds() >= 8  # not inside the cooldown
    assert back.desired == 1 and back.figures["observed"] < 45, back
    reconciler.reconcile_stack(stack.pk)
    assert len(engine_containers(stack, "--filter", "status=running")) == 1
    assert Service.objects.get(pk=service.pk).scale == 1
    print(
        f"\nautoscaling out and in through the frontier: {time.monotonic() - started:.1f}s;"
        f" out {out.figures}, in {back.figures}, {len(load.answers)} requests"
    )
