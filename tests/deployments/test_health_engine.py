"""Health checks on the real engine: berth.yml's check reaches the container, Berth's own
probes judge the demo web image, and a container that stays unhealthy is replaced until
its service is reported as flapping."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.activity.models import Event
from apps.catalog.models import Template, TemplateVersion
from apps.deployments import probes, reconciler, services, tasks
from apps.deployments.models import Container, Route, Stack
from apps.deployments.signals import frontier_changed
from apps.hosts.engine import get_engine
from apps.hosts.models import Host
from tests.fixtures.engine import docker, engine_containers

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def demo_web() -> str:
    """berth-demo/web:1.0, built on the engine (idempotent, quick when up to date)."""
    script = Path(settings.BASE_DIR) / "deploy" / "build-images.sh"
    subprocess.run([str(script)], check=True, capture_output=True, timeout=600)
    return "berth-demo/web:1.0"


WEB = """
services:
  web:
    image: berth-demo/web:1.0
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "true"]
      retries: 7
"""


def deploy(owner, environment, name: str, health_check: dict, compose: str = WEB) -> Stack:
    """A stack of a one-version template whose berth.yml gives `web` this health check."""
    template, _ = Template.objects.get_or_create(
        slug=f"health-{name}",
        defaults={
            "name": name,
            "category": "web",
            "visibility": Template.Visibility.PUBLIC,
            "approval": Template.Approval.APPROVED,
        },
    )
    version = TemplateVersion.objects.create(
        template=template,
        version="1.0.0",
        compose=compose,
        questions=[],
        config={"services": {"web": {"health_check": health_check}}},
        content_hash=hashlib.sha256(compose.encode()).hexdigest(),
    )
    stack = services.create_stack(owner, environment, name, template_version=version)
    reconciler.reconcile_stack(stack.pk)
    return Stack.objects.get(pk=stack.pk)


def test_berth_yml_health_check_reaches_the_container(owner, environment, demo_web):
    wanted = {"test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"]}
    stack = deploy(owner, environment, "tuned", {**wanted, "interval": "1s", "timeout": "2s"})

    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    (container,) = engine_containers(stack)
    assert container["Config"]["Healthcheck"] == {
        "Test": wanted["test"],
        "Interval": 1_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 7,  # the compose file's, which berth.yml left out
        "StartPeriod": 5_000_000_000,  # the image's HEALTHCHECK, which neither sets
    }
    assert container["State"]["Health"]["Status"] == "healthy"


# --- Berth's own probes ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def own_frontier_dir(settings, tmp_path):
    """Health changes and drains tell the frontier: it renders into the test's folder."""
    settings.BERTH_FRONTIER_DIR = tmp_path / "frontier"


def web_row(stack: Stack, service: str = "web") -> Container:
    return Container.objects.get(stack=stack, service__name=service)


def passes_until(stack: Stack, wanted: set[str], passes: int = 40) -> Container:
    """Health passes (0.25 s apart) until the web container's health is in `wanted`."""
    for _ in range(passes):
        tasks.health_pass(stack_host(stack).pk)
        row = web_row(stack)
        if row.health in wanted:
            return row
        time.sleep(0.25)
    return web_row(stack)


def stack_host(stack: Stack) -> Host:
    return Host.objects.get(name="local")


PROBED = """
services:
  web:
    image: berth-demo/web:1.0
    stop_grace_period: 1s
"""


def test_http_probe_finds_the_demo_image_healthy(owner, environment, demo_web):
    target = {"port": 8080, "path": "/health/", "expect_status": 200}
    check = {"http": target, "interval": "1s", "retries": 2}
    stack = deploy(owner, environment, "probed", check, compose=PROBED)

    (container,) = engine_containers(stack)
    assert container["Config"]["Healthcheck"]["Test"] == ["NONE"], "the probe alone decides"
    row = passes_until(stack, {"healthy", "unhealthy"})
    assert (row.health, row.health_reason) == ("healthy", "GET /health/ on port 8080 answered 200")
    assert (
        row.address
        and row.address
        == container["NetworkSettings"]["Networks"][
            f"berth-{settings.BERTH_INSTALLATION_ID}-e{environment.pk}"
        ]["IPAddress"]
    )
    stack.refresh_from_db()
    assert stack.state == Stack.State.HEALTHY, stack.state_reason


def test_http_probe_on_a_missing_path_makes_it_unhealthy(owner, environment, demo_web):
    check = {"http": {"port": 8080, "path": "/missing"}, "interval": "1s", "retries": 2}
    stack = deploy(owner, environment, "missing", check, compose=PROBED)

    row = passes_until(stack, {"healthy", "unhealthy"})
    assert row.health == "unhealthy"
    assert row.health_reason == "GET /missing on port 8080 answered 404 (wanted 2xx or 3xx)"
    stack.refresh_from_db()
    assert stack.state != Stack.State.HEALTHY
    assert "web: unhealthy" in stack.state_reason


def test_tcp_probe_on_a_closed_port_is_refused(owner, environment, demo_web):
    check = {"tcp": {"port": 9999}, "interval": "1s", "retries": 1}
    stack = deploy(owner, environment, "closed", check, compose=PROBED)

    row = passes_until(stack, {"healthy", "unhealthy"})
    assert (row.health, row.health_reason) == ("unhealthy", "port 9999: connection refused")


DEPENDENT = """
services:
  web:
    image: berth-demo/web:1.0
    stop_grace_period: 1s
  client:
    image: berth-demo/web:1.0
    stop_grace_period: 1s
    depends_on:
      web: {condition: service_healthy}
"""


def test_dependents_wait_for_the_probe(owner, environment, demo_web):
    """service_healthy on a probed service: the reconciler probes it itself, and starts
    the dependent once it answers; the container is written healthy at once."""
    check = {"http": {"port": 8080, "path": "/health"}, "interval": "1s"}
    stack = deploy(owner, environment, "waits", check, compose=DEPENDENT)

    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert web_row(stack).health == "healthy"
    assert web_row(stack, "client").health == "healthy"  # the image's own HEALTHCHECK


def test_dependents_of_a_failing_probe_are_not_started(owner, environment, demo_web):
    check = {"http": {"port": 8080, "path": "/missing"}, "interval": "1s", "retries": 1}
    stack = deploy(owner, environment, "blocked", check, compose=DEPENDENT)

    assert stack.state == Stack.State.FAILED
    assert "web is unhealthy, so the services that depend on it were not started" in (
        stack.state_reason
    )
    assert not Container.objects.filter(stack=stack, service__name="client").exists()


def test_wait_for_a_new_container_uses_the_probe(owner, environment, demo_web):
    check = {"http": {"port": 8080, "path": "/missing"}, "interval": "1s", "retries": 1}
    stack = deploy(owner, environment, "newone", check, compose=PROBED)
    host = stack_host(stack)
    (container,) = engine_containers(stack)
    with get_engine(host) as engine:
        run = reconciler.Run(stack, host, engine, token="test")
        with pytest.raises(reconciler.WaitFailedError) as failed:
            run.wait_container(container["Id"], "web")
    assert "answered 404" in str(failed.value)


# --- replacement and flapping ---------------------------------------------------------------

NEVER_HEALTHY = {
    "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/never"],
    "interval": "1s",
    "timeout": "1s",
    "retries": 1,
    "start_period": "1s",
}


@pytest.fixture
def told_frontier():
    """What the frontier was told, with the containers draining at that moment."""
    told = []

    def note(sender, stack_id=None, reason="", **kwargs):
        draining = Container.objects.filter(stack_id=stack_id, draining=True)
        told.append((stack_id, reason, list(draining.values_list("engine_id", flat=True))))

    frontier_changed.connect(note, dispatch_uid="health-test")
    yield told
    frontier_changed.disconnect(dispatch_uid="health-test")


def test_an_unhealthy_container_is_replaced_until_its_service_is_flapping(
    owner, environment, demo_web, told_frontier
):
    stack = deploy(owner, environment, "flaps", NEVER_HEALTHY, compose=PROBED)
    host = stack_host(stack)
    first = web_row(stack).engine_id
    service = stack.services.get(name="web")

    for _ in range(240):
        tasks.health_pass(host.pk)
        service.refresh_from_db()
        if service.flapping:
            break
        time.sleep(0.25)

    assert service.flapping
    assert len(service.replacements) == 3
    assert first not in {c["Id"] for c in engine_containers(stack)}
    replaced = Event.objects.filter(object_id=str(stack.pk), action="container.replace")
    assert replaced.count() == 3
    assert all(e.data["reason"] == "unhealthy" for e in replaced)
    drains = [(reason, ids) for stack_id, reason, ids in told_frontier if stack_id == stack.pk]
    assert [reason for reason, _ in drains] == ["unhealthy"] * 3
    assert drains[0][1] == [first], "taken out of the frontier before it is stopped"
    (flagged,) = Event.objects.filter(object_id=str(stack.pk), action="service.flapping")
    assert flagged.data["count"] == 3
    stack.refresh_from_db()
    assert "web: unhealthy (flapping: replaced 3 times in 10 minutes" in stack.state_reason

    # Flapping: still replaced, but not again within the backoff (a minute).
    with get_engine(host) as engine:
        for _ in range(80):
            if probes.check_host(host, engine).unhealthy:
                break
            time.sleep(0.25)
        else:
            pytest.fail("the replacement never became unhealthy")
    assert tasks.health_pass(host.pk)["replaced"] == 0
    service.refresh_from_db()
    assert len(service.replacements) == 3


def test_a_routed_container_that_turns_unhealthy_leaves_the_frontier_and_is_replaced(
    owner, environment, demo_web, told_frontier, settings
):
    """The demo image answers 503 on /health/ once /tmp/unhealthy exists: the probe sees
    it, the frontier is told of each health change, and the container is drained (and
    only then stopped) before a new one takes its place."""
    settings.BERTH_FRONTIER_DRAIN_SECONDS = 0.2
    target = {"port": 8080, "path": "/health/"}
    check = {"http": target, "interval": "1s", "retries": 1}
    stack = deploy(owner, environment, "routed", check, compose=PROBED)
    web = stack.services.get(name="web")
    Route.objects.create(
        tenant=stack.tenant, stack=stack, service=web, hostname="routed.test", port=8080
    )
    assert passes_until(stack, {"healthy", "unhealthy"}).health == "healthy"
    first = web_row(stack).engine_id
    docker("exec", first, "touch", "/tmp/unhealthy")

    for _ in range(80):
        tasks.health_pass(stack_host(stack).pk)
        if not Container.objects.filter(engine_id=first).exists():
            break
        time.sleep(0.25)

    told = [(reason, ids) for stack_id, reason, ids in told_frontier if stack_id == stack.pk]
    reasons = [reason for reason, _ in told]
    assert reasons[:3] == ["health", "health", "unhealthy"], reasons  # healthy, unhealthy, drain
    assert told[2][1] == [first]
    assert first not in {c["Id"] for c in engine_containers(stack)}
    new = passes_until(stack, {"healthy", "unhealthy"})
    assert (new.health, new.draining) == ("healthy", False)
    assert new.engine_id != first
    web.refresh_from_db()
    assert len(web.replacements) == 1 and not web.flapping
