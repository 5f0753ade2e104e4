"""Stopping the engine mid-deploy, and deploying while it is down: the stack says why
(unknown or failed, a readable reason, an Event), and converges once the engine is back,
with no duplicate containers.

The machine's main engine (/var/run/docker.sock) is shared with other tests and helpers,
so these tests start a second dockerd of their own, as ../shared/DESIGN.md describes:
its own socket, data root, exec root, pidfile and default bridge (created beforehand with
`ip link add NAME type bridge`; never `--bridge none`, which would delete the main
engine's docker0). iptables is left to the main engine: nothing here publishes ports.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.activity.models import Event
from apps.deployments import reconciler
from apps.deployments.models import Container, Stack
from apps.hosts import services as host_services
from apps.hosts.models import Host
from tests.fixtures.engine import docker, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

# `slow` becomes healthy only after a few seconds; `after` waits for it (service_healthy),
# so a reconcile is still busy with this stack when the engine is stopped.
SLOW = """
services:
  slow:
    image: ${IMAGE}
    command: ["sh", "-c", "sleep 4; touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 60
    stop_grace_period: 1s
  after:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on:
      slow: {condition: service_healthy}
    stop_grace_period: 1s
"""


class SecondEngine:
    """A dockerd of the tests' own, stopped and started again on the same data root."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.root = Path(tempfile.mkdtemp(prefix=f"bo-{suffix}-", dir="/tmp"))
        self.bridge = f"bo{suffix}"  # at most 15 characters
        self.socket = self.root / "docker.sock"
        self.endpoint = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None
        (self.root / "daemon.json").write_text("{}")  # no machine-wide settings

    def create_bridge(self) -> None:
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def start(self) -> None:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 (kept by the process)
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--config-file",
                str(self.root / "daemon.json"),
                "-H",
                self.endpoint,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--bridge",
                self.bridge,
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited: {self.log_tail()}")
            if self.cli("version", check=False, timeout=5).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"dockerd did not answer within 60s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, as a host's service manager would; dockerd stops its containers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cli(self, *args: str, check: bool = True, timeout: float = 120, **kwargs):
        done = subprocess.run(
            ["docker", "-H", self.endpoint, *args],
            capture_output=True,
            timeout=timeout,
            **kwargs,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr!r}")
        return done

    def text(self, *args: str) -> str:
        return self.cli(*args).stdout.decode().strip()

    def load(self, image: str) -> None:
        """The main engine's image, copied over (no registry is reachable here)."""
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        self.cli("load", "-q", stdin=saved.stdout)
        assert saved.wait(timeout=60) == 0

    def containers(self, stack: Stack) -> list[dict]:
        ids = self.text("ps", "-aq", "--filter", f"label=io.berth.stack={stack.pk}").split()
        return json.loads(self.text("inspect", *ids)) if ids else []

    def log_tail(self) -> str:
        path = self.root / "dockerd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def clean(self) -> None:
        """Everything this engine made in the host's network namespace goes with it:
        its containers, then its networks (their bridges), then its own bridge."""
        if not self.running and self.process is not None:
            with contextlib.suppress(AssertionError):
                self.start()
        if self.running:
            ids = self.text("ps", "-aq").split()
            if ids:
                self.cli("rm", "-f", "-v", *ids, check=False)
            for line in self.text("network", "ls", "--format", "{{.Name}}").split():
                if line not in ("bridge", "host", "none"):
                    self.cli("network", "rm", line, check=False)
            self.stop()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self._unmount()
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount(self) -> None:
        mounts = Path("/proc/mounts").read_text().splitlines()
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(self.root))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture
def second_engine(image) -> Iterator[SecondEngine]:
    if shutil.which("dockerd") is None or shutil.which("ip") is None:
        pytest.skip("dockerd and iproute2 are needed for a second engine")
    engine = SecondEngine()
    try:
        engine.create_bridge()
        engine.start()
        engine.load(image)
        yield engine
    finally:
        engine.clean()


@pytest.fixture
def outage_host(superuser, environment, second_engine) -> Host:
    """The second engine, registered as a Host and made the environment's only host."""
    host = host_services.register_host(
        actor=superuser, name=f"outage-{uuid.uuid4().hex[:6]}", endpoint=second_engine.endpoint
    )
    environment.hosts.add(host)
    assert reconciler.target_host(Stack(environment=environment)) == host
    return host


def fresh(stack: Stack) -> Stack:
    return Stack.objects.get(pk=stack.pk)


def slots(engine: SecondEngine, stack: Stack) -> list[tuple[str, str]]:
    labels = [c["Config"]["Labels"] for c in engine.containers(stack)]
    return sorted((lab["io.berth.service"], lab["io.berth.replica"]) for lab in labels)


def failures(stack: Stack) -> list[Event]:
    return list(
        Event.objects.filter(
            object_type="stack", object_id=str(stack.pk), outcome=Event.Outcome.FAILURE
        ).order_by("created_at")
    )


def deploying(environment, name: str, image: str) -> Stack:
    """A stack as the service layer leaves it: a revision and a deploy under way."""
    stack = make_stack(environment, name, SLOW, {"IMAGE": image})
    Stack.objects.filter(pk=stack.pk).update(operation="deploy", state=Stack.State.DEPLOYING)
    return fresh(stack)


def reconcile_in_background(stack: Stack) -> threading.Thread:
    def run() -> None:
        try:
            reconciler.reconcile_stack(stack.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_converged(engine: SecondEngine, stack: Stack) -> None:
    stack = fresh(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert stack.operation == "" and stack.claimed_by == ""
    found = engine.containers(stack)
    assert slots(engine, stack) == [("after", "1"), ("slow", "1")]  # one each, no duplicates
    assert all(c["State"]["Running"] for c in found)
    assert Container.objects.filter(stack=stack).count() == 2
    # Nothing reached the main engine.
    assert (
        docker(
            "ps",
            "-aq",
            "--filter",
            f"label=io.berth.installation={settings.BERTH_INSTALLATION_ID}",
            "--filter",
            f"label=io.berth.stack={stack.pk}",
        )
        == ""
    )


def test_engine_stopped_mid_deploy_converges_after_it_returns(
    environment, image, second_engine, outage_host
):
    stack = deploying(environment, "outage", image)
    worker = reconcile_in_background(stack)
    # The deploy is under way: `slow` is created, `after` waits for its health.
    wait_until(lambda: slots(second_engine, stack) == [("slow", "1")], what="slow's container")
    assert not worker.join(timeout=0.5) and worker.is_alive()

    second_engine.stop()
    worker.join(timeout=90)
    assert not worker.is_alive(), "the reconcile did not give up on a stopped engine"
    stack = fresh(stack)
    assert stack.state in (Stack.State.FAILED, Stack.State.UNKNOWN), stack.state
    assert stack.state_reason and stack.claimed_by == ""
    assert failures(stack), "the failure is not in the stack's events"

    # The next pass (the beat, or a retry) finds the engine down: unknown, and why.
    reconciler.reconcile_stack(stack.pk)
    stack = fresh(stack)
    assert stack.state == Stack.State.UNKNOWN
    assert stack.state_reason.startswith("The engine is unreachable: Cannot reach the engine at")
    assert outage_host.endpoint in stack.state_reason
    assert "stack.engine_unreachable" in [e.action for e in failures(stack)]
    counts = reconciler.reconcile_host(outage_host.pk)
    assert counts["stacks"] == 0  # nothing could be done, and nothing raised

    # The engine comes back with the same data root: the exited container is started
    # again (not duplicated), `after` follows once `slow` is healthy.
    second_engine.start()
    reconciler.reconcile_stack(stack.pk)
    assert_converged(second_engine, stack)
    print(f"\nengine-outage events: {[e.message for e in failures(stack)]}")


def test_deploy_while_the_engine_is_down_converges_when_it_returns(
    environment, image, second_engine, outage_host
):
    second_engine.stop()
    stack = deploying(environment, "late", image)
    reconciler.reconcile_stack(stack.pk)

    stack = fresh(stack)
    assert stack.state == Stack.State.UNKNOWN
    assert "The engine is unreachable" in stack.state_reason
    assert "connection refused" in stack.state_reason or "no socket" in stack.state_reason
    (event,) = [e for e in failures(stack) if e.action == "stack.engine_unreachable"]
    assert event.message == stack.state_reason and event.tenant_id == stack.tenant_id
    reconciler.reconcile_stack(stack.pk)  # still down: the same state, no second event
    assert len([e for e in failures(stack) if e.action == "stack.engine_unreachable"]) == 1

    second_engine.start()
    reconciler.reconcile_host(outage_host.pk)  # the beat's path this time
    assert_converged(second_engine, stack)
