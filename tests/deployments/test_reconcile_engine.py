"""The reconciler against the real engine: deploy, dependency order, DNS, repair, scale,
adoption after a database restore, SIGKILL mid-deploy, stop and remove."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.activity.models import Event
from apps.deployments import containers as naming
from apps.deployments import reconciler
from apps.deployments.models import Container, Service, Stack
from apps.deployments.spec import build_spec
from apps.hosts.engine import get_engine
from apps.hosts.models import Host
from tests.fixtures.engine import (
    docker,
    engine_containers,
    inspect,
    make_stack,
    new_revision,
    slots,
)

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

THREE_TIER = """
services:
  db:
    image: ${IMAGE}
    command: ["sh", "-c", "sleep 2; echo ok > /www/index.html; exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
    volumes: ["data:/data"]
    stop_grace_period: 1s
  api:
    image: ${IMAGE}
    command: ["sh", "-c", "wget -q -O /tmp/seen http://db/ || exit 3; exec httpd -f -p 80 -h /www"]
    depends_on:
      db: {condition: service_healthy}
    stop_grace_period: 1s
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on: [api]
    ports: ["80"]
    stop_grace_period: 1s
volumes:
  data: {}
"""

SIMPLE = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    environment: {GREETING: "${GREETING:-hello}"}
    stop_grace_period: 1s
    deploy:
      replicas: ${REPLICAS:-1}
      update_config: {order: "${ORDER:-stop-first}"}
"""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")


def fresh(stack: Stack) -> Stack:
    return Stack.objects.get(pk=stack.pk)


def by_service(stack: Stack) -> dict[str, dict]:
    return {c["Config"]["Labels"]["io.berth.service"]: c for c in engine_containers(stack)}


def test_three_tier_deploy_waits_for_health_and_uses_service_names(environment, image):
    stack = make_stack(environment, "shop", THREE_TIER, {"IMAGE": image})
    deploy_calls = counted_pass(stack)
    print(f"\nDocker API calls for the first deploy of a 3-service stack: {deploy_calls}")

    stack = fresh(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    assert stack.operation == "" and stack.claimed_by == ""
    assert slots(stack) == [("api", "1"), ("db", "1"), ("web", "1")]
    found = by_service(stack)
    db, api, web = found["db"], found["api"], found["web"]

    # api (service_healthy on db) started only once db's health test passed (Berth's own
    # run of it through exec or Docker's probe, whichever came first: readiness.py), and
    # reached db by its service name (its command exits 3 otherwise, and never restarted).
    assert db["State"]["Health"]["Status"] == "healthy"
    assert api["State"]["Running"] and api["RestartCount"] == 0
    assert docker("exec", api["Id"], "cat", "/tmp/seen") == "ok"
    assert docker("exec", web["Id"], "wget", "-q", "-O-", "http://db/") == "ok"

    # The stack's own network (bare service names) and the environment's (service.stack),
    # Berth's labels and hardening on every container.
    environment_network = naming.network_name(stack)
    stack_network = naming.stack_network_name(stack)
    for name, container in found.items():
        networks = container["NetworkSettings"]["Networks"]
        assert sorted(networks) == sorted([environment_network, stack_network])
        assert f"{name}.{stack.name}" in networks[environment_network]["Aliases"]
        hc = container["HostConfig"]
        assert hc["Memory"] == environment.default_memory_limit
        assert hc["PidsLimit"] == environment.default_pids_limit
        assert "no-new-privileges:true" in hc["SecurityOpt"]
        assert hc["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "3", "max-size": "10m"},
        }
        labels = container["Config"]["Labels"]
        assert labels["io.berth.managed"] == "true"
        assert labels["io.berth.revision"] == "1"
    assert web["Name"] == f"/berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}-web-1"
    bindings = web["HostConfig"]["PortBindings"]["80/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert db["Mounts"][0]["Name"] == f"berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}-data"

    # The database mirrors the engine.
    assert Container.objects.filter(stack=stack).count() == 3
    assert set(Service.objects.filter(stack=stack).values_list("health", flat=True)) == {"healthy"}
    actions = set(Event.objects.filter(tenant=stack.tenant).values_list("action", flat=True))
    assert {"container.create"} <= actions

    # A converged pass: nothing to do; the version probe and one list call.
    before = sorted(c["Id"] for c in engine_containers(stack))
    calls = counted_pass(stack)
    print(f"Docker API calls for one converged reconcile pass of a 3-service stack: {calls}")
    assert calls == 2
    assert sorted(c["Id"] for c in engine_containers(stack)) == before


def counted_pass(stack: Stack) -> int:
    """One reconcile pass, returning the number of HTTP requests made to the engine."""
    host = Host.objects.get(name="local")
    token = reconciler.claim(stack.pk)
    assert token
    try:
        with get_engine(host) as engine:
            reconciler.Run(fresh(stack), host, engine, token).execute()
            return engine.api_calls
    finally:
        reconciler.release(stack.pk, token)


def test_restart_operation_restarts_each_container_once(environment, image):
    stack = make_stack(environment, "bounce", SIMPLE, {"IMAGE": image, "REPLICAS": "2"})
    reconciler.reconcile_stack(stack.pk)
    started = {c["Id"]: c["State"]["StartedAt"] for c in engine_containers(stack)}

    Stack.objects.filter(pk=stack.pk).update(operation="restart")
    reconciler.reconcile_stack(stack.pk)
    after = {c["Id"]: c["State"]["StartedAt"] for c in engine_containers(stack)}
    assert set(after) == set(started)
    assert all(after[i] > started[i] for i in started)
    stack = fresh(stack)
    assert stack.operation == "" and stack.state == Stack.State.HEALTHY


def test_a_change_written_during_a_pass_is_picked_up(environment, image, monkeypatch):
    stack = make_stack(environment, "late", SIMPLE, {"IMAGE": image})
    token = reconciler.claim(stack.pk)
    assert reconciler.claim(stack.pk) is None  # a second worker gives up at once
    reconciler.release(stack.pk, token)

    # A scale arrives while the first pass runs (its own task found the lease taken).
    spec = build_spec(SIMPLE, {"IMAGE": image, "REPLICAS": "2"}, environment)
    original = reconciler.Run.execute
    passes = []

    def execute(run):
        original(run)
        passes.append(run.revision.number)
        if len(passes) == 1:
            new_revision(Stack.objects.get(pk=stack.pk), spec)

    monkeypatch.setattr(reconciler.Run, "execute", execute)
    reconciler.reconcile_stack(stack.pk)
    assert passes == [1, 2]
    assert slots(stack) == [("web", "1"), ("web", "2")]


def test_dependency_that_never_gets_healthy_fails_readably(environment, image):
    compose = """
    services:
      db:
        image: ${IMAGE}
        command: ["sleep", "3600"]
        healthcheck: {test: ["CMD", "false"], interval: 1s, retries: 2}
      api:
        image: ${IMAGE}
        command: ["sleep", "3600"]
        depends_on: {db: {condition: service_healthy}}
    """
    stack = make_stack(environment, "sick", compose, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    stack = fresh(stack)
    assert stack.state == Stack.State.FAILED
    assert "db is unhealthy" in stack.state_reason
    assert slots(stack) == [("db", "1")]
    assert Event.objects.filter(
        tenant=stack.tenant, outcome="failure", message__contains="db is unhealthy"
    ).exists()


def test_killed_and_vanished_containers_are_restored(environment, image):
    stack = make_stack(environment, "repair", SIMPLE, {"IMAGE": image, "REPLICAS": "2"})
    reconciler.reconcile_stack(stack.pk)
    first, second = engine_containers(stack)
    docker("kill", first["Id"])
    docker("rm", "-f", second["Id"])

    reconciler.reconcile_stack(stack.pk)
    after = engine_containers(stack)
    assert slots(stack) == [("web", "1"), ("web", "2")]
    assert all(c["State"]["Running"] for c in after)
    assert first["Id"] in {c["Id"] for c in after}  # restarted, not re-created
    assert fresh(stack).state == Stack.State.HEALTHY
    assert Container.objects.filter(stack=stack).count() == 2


def test_scale_up_and_down(environment, image):
    stack = make_stack(environment, "scale", SIMPLE, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    (only,) = engine_containers(stack)

    new_revision(stack, build_spec(SIMPLE, {"IMAGE": image, "REPLICAS": "3"}, environment))
    reconciler.reconcile_stack(stack.pk)
    assert slots(stack) == [("web", "1"), ("web", "2"), ("web", "3")]
    assert Service.objects.get(stack=stack).scale == 3

    new_revision(stack, build_spec(SIMPLE, {"IMAGE": image, "REPLICAS": "1"}, environment))
    reconciler.reconcile_stack(stack.pk)
    assert [c["Id"] for c in engine_containers(stack)] == [only["Id"]]  # kept, not replaced
    assert fresh(stack).state == Stack.State.HEALTHY


def test_changed_spec_rolls_start_first(environment, image):
    variables = {"IMAGE": image, "REPLICAS": "2", "ORDER": "start-first"}
    stack = make_stack(environment, "roll", SIMPLE, variables)
    reconciler.reconcile_stack(stack.pk)
    old = {c["Id"] for c in engine_containers(stack)}

    spec = build_spec(SIMPLE, {**variables, "GREETING": "bonjour"}, environment)
    new_revision(stack, spec)
    reconciler.reconcile_stack(stack.pk)
    after = engine_containers(stack)
    assert slots(stack) == [("web", "1"), ("web", "2")]
    assert not old & {c["Id"] for c in after}
    assert all("GREETING=bonjour" in c["Config"]["Env"] for c in after)
    assert all(c["Config"]["Labels"]["io.berth.revision"] == "2" for c in after)


def test_database_restore_adopts_running_containers(environment, image):
    stack = make_stack(environment, "adopt", SIMPLE, {"IMAGE": image, "REPLICAS": "2"})
    reconciler.reconcile_stack(stack.pk)
    before = sorted(c["Id"] for c in engine_containers(stack))

    # An older backup knows nothing of these containers.
    Container.objects.filter(stack=stack).delete()
    Stack.objects.filter(pk=stack.pk).update(state=Stack.State.DEPLOYING)
    reconciler.reconcile_stack(stack.pk)

    assert sorted(c["Id"] for c in engine_containers(stack)) == before
    assert sorted(Container.objects.filter(stack=stack).values_list("engine_id", flat=True)) == (
        before
    )
    assert fresh(stack).state == Stack.State.HEALTHY


def test_sigkill_mid_deploy_converges_without_duplicates(environment, image):
    stack = make_stack(environment, "crash", THREE_TIER, {"IMAGE": image})
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "paas.settings"}
    code = (
        "import django; django.setup(); "
        "from apps.deployments.reconciler import reconcile_stack; "
        f"reconcile_stack({stack.pk})"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR)
    try:
        deadline = time.monotonic() + 30
        while not engine_containers(stack) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine_containers(stack), "the worker never created a container"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    assert slots(stack) == [("db", "1")]  # killed while waiting for db's health

    # The dead worker still holds the lease: nobody else acts until it expires.
    assert fresh(stack).claimed_by
    reconciler.reconcile_stack(stack.pk)
    assert slots(stack) == [("db", "1")]
    Stack.objects.filter(pk=stack.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))

    reconciler.reconcile_stack(stack.pk)
    reconciler.reconcile_stack(stack.pk)
    assert slots(stack) == [("api", "1"), ("db", "1"), ("web", "1")]
    assert fresh(stack).state == Stack.State.HEALTHY
    connection.close()


def test_stop_start_and_remove_with_volumes(environment, image):
    stack = make_stack(environment, "life", THREE_TIER, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    ids = sorted(c["Id"] for c in engine_containers(stack))

    Stack.objects.filter(pk=stack.pk).update(desired_state="stopped", operation="stop")
    reconciler.reconcile_stack(stack.pk)
    assert not any(c["State"]["Running"] for c in engine_containers(stack))
    assert fresh(stack).state == Stack.State.STOPPED
    assert fresh(stack).operation == ""

    Stack.objects.filter(pk=stack.pk).update(desired_state="running", operation="start")
    reconciler.reconcile_stack(stack.pk)
    assert sorted(c["Id"] for c in engine_containers(stack)) == ids
    assert fresh(stack).state == Stack.State.HEALTHY

    volume = naming.volume_name(stack, "data")
    assert docker("volume", "ls", "-q", "--filter", f"name={volume}") == volume
    Stack.objects.filter(pk=stack.pk).update(desired_state="removed", remove_volumes=True)
    reconciler.reconcile_stack(stack.pk)
    assert engine_containers(stack) == []
    assert docker("volume", "ls", "-q", "--filter", f"name={volume}") == ""
    assert not Stack.objects.filter(pk=stack.pk).exists()


def test_unreachable_engine_marks_the_stack_unknown(environment, image, tmp_path):
    stack = make_stack(environment, "lost", SIMPLE, {"IMAGE": image})
    gone = Host.objects.create(name="gone", endpoint=f"unix://{tmp_path}/no.sock")
    environment.hosts.add(gone)
    reconciler.reconcile_stack(stack.pk)
    stack = fresh(stack)
    assert stack.state == Stack.State.UNKNOWN
    assert "unreachable" in stack.state_reason
    reconciler.reconcile_host(gone.pk)
    assert fresh(stack).state == Stack.State.UNKNOWN
    assert Event.objects.filter(action="stack.engine_unreachable", tenant=stack.tenant).count() == 1

    environment.hosts.remove(gone)  # the engine "returns": the stack converges
    reconciler.reconcile_host(Host.objects.get(name="local").pk)
    assert fresh(stack).state == Stack.State.HEALTHY
    assert slots(stack) == [("web", "1")]


def test_host_pass_repairs_and_removes_orphans(environment, image):
    stack = make_stack(environment, "beat", SIMPLE, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    (container,) = engine_containers(stack)
    docker("rm", "-f", container["Id"])
    tenant = stack.tenant.slug
    orphan = docker(
        "run",
        "-d",
        "--label",
        "io.berth.managed=true",
        "--label",
        f"io.berth.tenant={tenant}",
        "--label",
        "io.berth.stack=999999999",
        "--label",
        f"io.berth.installation={settings.BERTH_INSTALLATION_ID}",
        image,
    )
    host = Host.objects.get(name="local")
    with override_settings(BERTH_ORPHAN_GRACE_SECONDS=3600):
        reconciler.reconcile_host(host.pk)
    assert slots(stack) == [("web", "1")]
    assert inspect(orphan)["State"]["Running"]  # within the grace period

    with override_settings(BERTH_ORPHAN_GRACE_SECONDS=0):
        time.sleep(1)
        counters = reconciler.reconcile_host(host.pk)
    assert counters["orphans"] >= 1
    assert docker("ps", "-aq", "--filter", f"id={orphan}") == ""


TWIN = """
services:
  api:
    image: ${IMAGE}
    command: ["sh", "-c", "echo ${WHO} > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    depends_on: [api]
    stop_grace_period: 1s
"""


def test_two_stacks_in_one_environment_each_reach_their_own_service(environment, image):
    """A bare service name is the stack's own service, even when another stack in the
    environment has a service of that name; the other one is `<service>.<stack>`."""
    first = make_stack(environment, "blue", TWIN, {"IMAGE": image, "WHO": "blue"})
    second = make_stack(environment, "green", TWIN, {"IMAGE": image, "WHO": "green"})
    for stack in (first, second):
        reconciler.reconcile_stack(stack.pk)
    for stack, other in ((first, second), (second, first)):
        web = by_service(fresh(stack))["web"]["Id"]
        fetch = ["exec", web, "sh", "-c"]
        assert docker(*fetch, "sleep 1; wget -q -O- http://api/") == stack.name
        assert docker(*fetch, f"wget -q -O- http://api.{other.name}/") == other.name

    Stack.objects.filter(pk=first.pk).update(desired_state=Stack.Desired.REMOVED)
    reconciler.reconcile_stack(first.pk)
    assert not Stack.objects.filter(pk=first.pk).exists()
    stack_network = naming.stack_network_name(first)
    assert docker("network", "ls", "-q", "--filter", f"name={stack_network}") == ""
