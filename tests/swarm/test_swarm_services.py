"""The Swarm driver's service building blocks on a real 3-node swarm: an overlay
network, a 3-replica service of the demo web image placed on the workers, its dnsrr
name resolved and answered from a task on another node, a start-first rolling update,
scaling, the merged service log, removal; and another installation's service never
seen or touched. The reconciler uses these for stacks: tests/swarm/test_swarm_stacks.py.

Everything made here carries `io.berth.test-run=<run>` and is removed by that label
through the docker CLI afterwards, also when a test fails.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from django.conf import settings

from apps.hosts.engine import (
    EngineError,
    HealthcheckRequest,
    RolloutConfig,
    ServiceNetwork,
    SwarmServiceRequest,
    managed_labels,
)
from apps.hosts.engine.swarm import SwarmCluster, SwarmTaskInfo
from tests.conftest import PASSWORD
from tests.swarm.cluster import Cluster

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def run_id(swarm: Cluster) -> Iterator[str]:
    """A label value for everything this test makes; all of it removed afterwards."""
    run = uuid.uuid4().hex[:6]
    yield run
    manager = swarm.manager
    label = f"label=io.berth.test-run={run}"
    services = manager.docker("service", "ls", "-q", "--filter", label, check=False).split()
    if services:
        manager.docker("service", "rm", *services, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a network is in use until the tasks are gone
        networks = manager.docker("network", "ls", "-q", "--filter", label, check=False).split()
        if not networks:
            break
        manager.docker("network", "rm", *networks, check=False)
        time.sleep(0.5)


@pytest.fixture
def engine(swarm: Cluster) -> Iterator[SwarmCluster]:
    with SwarmCluster(swarm.manager.endpoint, timeout=30) as driver:
        yield driver


def wait_for(what: str, probe: Callable[[], object], timeout: float = 60) -> object:
    """Poll `probe` until it returns something true; AssertionError with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        time.sleep(0.5)


def running(tasks: list[SwarmTaskInfo]) -> list[SwarmTaskInfo]:
    return [t for t in tasks if t.desired_state == "running" and t.state == "running"]


def test_a_service_on_the_workers_resolves_updates_scales_and_goes(
    swarm: Cluster, engine: SwarmCluster, published: str, superuser, run_id: str, capsys
):
    timings: dict[str, float] = {}
    started = time.monotonic()
    labels = managed_labels({"test-run": run_id, "stack": f"s{run_id}"})
    net_name = f"bsw2-{run_id}"
    with pytest.raises(EngineError, match="encrypted overlay networks are not available"):
        engine.ensure_overlay_network(net_name, labels, encrypted=True)
    net_id = engine.ensure_overlay_network(net_name, labels)
    assert engine.ensure_overlay_network(net_name, labels) == net_id  # idempotent
    assert engine.list_overlay_networks({"test-run": run_id}) == [net_name]

    registry = published.split("/", 1)[0]
    auth = {"username": superuser.username, "password": PASSWORD, "serveraddress": registry}
    web_name = f"bsw2-web-{run_id}"
    web = SwarmServiceRequest(
        name=web_name,
        image=published,
        labels={**labels, "io.berth.service": "web"},
        replicas=3,
        env={"MESSAGE": f"hello {run_id}"},
        memory=64 << 20,
        memory_reservation=8 << 20,
        nano_cpus=250_000_000,
        pids_limit=128,
        healthcheck=HealthcheckRequest(
            test=("CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"),
            interval=1,
            timeout=1,
            retries=3,
        ),
        constraints=("node.role==worker",),
        preferences=("node.hostname",),
        networks=(ServiceNetwork(net_name, ("web",)),),
        update=RolloutConfig(parallelism=1, order="start-first", monitor=1),
        rollback=RolloutConfig(parallelism=0, order="stop-first", failure_action="pause"),
        stop_grace_period=1,
        registry_auth=auth,
    )
    web_id = engine.create_service(web)
    workers = {n.node_id for n in swarm.worker_nodes}

    def three_on_workers() -> list[SwarmTaskInfo]:
        tasks = running(engine.list_service_tasks(service_ids=[web_id]))
        return tasks if len(tasks) == 3 else []

    tasks = wait_for("3 web tasks running", three_on_workers)
    timings["create to 3 running"] = time.monotonic() - started
    assert {t.node_id for t in tasks} <= workers, "placed on the workers only"
    assert {t.node_id for t in tasks} == workers, "spread over both workers"
    assert {t.service_id for t in tasks} == {web_id} and all(t.container_id for t in tasks)
    [listed] = engine.list_services({"test-run": run_id})
    assert (listed.service_id, listed.name, listed.replicas_desired) == (web_id, web_name, 3)
    assert listed.spec_hash and listed.labels["io.berth.service"] == "web"
    first_hash = listed.spec_hash
    # the label filter finds tasks in one call too
    by_label = {t.task_id for t in running(engine.list_service_tasks({"service": "web"}))}
    assert by_label >= {t.task_id for t in tasks}

    # dnsrr: the name resolves to every task, from a task on the manager (another node)
    probe_script = (
        f"while true; do echo ADDRS $(nslookup {web_name} 2>/dev/null | "
        "sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | sort | tr '\\n' ' '); "
        f"echo PAGE $(wget -q -O - http://web:8080/ 2>&1 | grep -o 'hello {run_id}' | head -1); "
        "sleep 1; done"
    )
    probe = SwarmServiceRequest(
        name=f"bsw2-probe-{run_id}",
        image=published,
        labels={**labels, "io.berth.service": "probe"},
        entrypoint=("sh", "-c", probe_script),
        constraints=("node.role==manager",),
        networks=(ServiceNetwork(net_name),),
        healthcheck=HealthcheckRequest(test=("NONE",)),
        stop_grace_period=0,
        registry_auth=auth,
    )
    probe_id = engine.create_service(probe)

    def probe_lines() -> list[str]:
        reader = engine.service_logs(probe_id, tail="20", follow=False)
        try:
            return [line.text for line in reader.lines()]
        finally:
            reader.close()

    def three_addresses() -> list[str]:
        for text in reversed(probe_lines()):
            found = re.findall(r"\d+\.\d+\.\d+\.\d+", text) if text.startswith("ADDRS") else []
            if len(set(found)) == 3:
                return found
        return []

    wait_for("the dnsrr name resolving to 3 tasks", three_addresses)
    wait_for("the page through the alias", lambda: f"PAGE hello {run_id}" in probe_lines())
    timings["probe resolves"] = time.monotonic() - started

    # following the merged log: new lines arrive, close() ends the reader
    follower = engine.service_logs(probe_id, tail="1", follow=True)
    followed: list[str] = []

    def follow() -> None:
        for line in follower.lines():
            followed.append(line.text)
            if len(followed) >= 3:
                return

    reader_thread = threading.Thread(target=follow, daemon=True)
    reader_thread.start()
    reader_thread.join(20)
    follower.close()
    reader_thread.join(5)
    assert len(followed) >= 3 and not reader_thread.is_alive(), followed

    # a start-first rolling update: new image and environment
    mark = time.monotonic()
    old_tasks = {t.task_id for t in tasks}
    version_11 = published.replace(":1.0", ":1.1")
    updated = replace(web, image=version_11, env={"GREETING": f"hi {run_id}"})
    engine.update_service(web_id, updated)

    def replaced() -> list[SwarmTaskInfo]:
        now = running(engine.list_service_tasks(service_ids=[web_id]))
        fresh = [t for t in now if t.task_id not in old_tasks and t.image == version_11]
        return fresh if len(fresh) == 3 and len(now) == 3 else []

    wait_for("3 tasks replaced by 1.1", replaced, timeout=90)
    [listed] = [s for s in engine.list_services({"test-run": run_id}) if s.service_id == web_id]
    assert listed.image == version_11 and listed.spec_hash not in ("", first_hash)
    order = swarm.manager.docker(
        "service", "inspect", web_id, "--format", "{{.Spec.UpdateConfig.Order}}"
    )
    assert order == "start-first"
    wait_for(
        "the update completed",
        lambda: engine.list_services({"service": "web"})[0].update_state == "completed",
    )
    timings["rolling update (3 tasks, start-first)"] = time.monotonic() - mark

    # scale to 1
    mark = time.monotonic()
    engine.update_service(web_id, replace(updated, replicas=1))

    def one_container_left() -> bool:  # the other two stopped, not only marked to stop
        tasks = engine.list_service_tasks(service_ids=[web_id])
        return [t.state for t in tasks].count("running") == 1 and len(running(tasks)) == 1

    wait_for("scaled to 1", one_container_left)
    timings["scale 3 -> 1"] = time.monotonic() - mark

    # gone: services, then the network
    mark = time.monotonic()
    engine.remove_service(web_id)
    engine.remove_service(probe_id)
    engine.remove_service(probe_id)  # gone already is fine
    assert engine.list_services({"test-run": run_id}) == []

    def network_removed() -> bool:
        try:
            engine.remove_overlay_network(net_name, labels)
        except EngineError:  # still in use while the tasks stop
            return False
        return engine.list_overlay_networks({"test-run": run_id}) == []

    wait_for("the network removed", network_removed, timeout=30)
    timings["remove"] = time.monotonic() - mark
    timings["total"] = time.monotonic() - started
    with capsys.disabled():
        print("\nswarm services: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_another_installations_service_is_never_seen_or_touched(
    swarm: Cluster, engine: SwarmCluster, run_id: str
):
    other = f"other-{run_id}"
    assert other != settings.BERTH_INSTALLATION_ID
    name = f"bsw2-foreign-{run_id}"
    manager = swarm.manager
    manager.docker(
        "network", "create", "--driver", "overlay", "--attachable",
        "--label", "io.berth.managed=true", "--label", f"io.berth.installation={other}",
        "--label", f"io.berth.test-run={run_id}", name,
    )  # fmt: skip
    foreign_id = manager.docker(
        "service", "create", "--detach", "--quiet", "--name", name, "--replicas", "0",
        "--label", "io.berth.managed=true", "--label", f"io.berth.installation={other}",
        "--label", f"io.berth.test-run={run_id}", "--no-resolve-image", "busybox:latest",
    )  # fmt: skip
    assert engine.list_services({"test-run": run_id}) == []
    assert name not in {s.name for s in engine.list_services()}
    assert engine.list_service_tasks(service_ids=[foreign_id]) == []
    assert engine.list_overlay_networks({"test-run": run_id}) == []
    request = SwarmServiceRequest(
        name=name, image="busybox:latest", labels=managed_labels({"test-run": run_id})
    )
    for call in (
        lambda: engine.update_service(foreign_id, request),
        lambda: engine.service_logs(foreign_id),
    ):
        with pytest.raises(EngineError, match="another Berth installation") as err:
            call()
        assert err.value.not_found and not err.value.retryable
    engine.remove_service(foreign_id)  # treated as not ours: left alone
    with pytest.raises(EngineError, match="belongs to another Berth installation"):
        engine.ensure_overlay_network(name, managed_labels({"test-run": run_id}))
    engine.remove_overlay_network(name, managed_labels({"test-run": run_id}))
    # a request claiming another installation is refused before any call
    with pytest.raises(EngineError, match="not this Berth's"):
        engine.create_service(
            SwarmServiceRequest(
                name=name,
                image="busybox:latest",
                labels={**managed_labels(), "io.berth.installation": other},
            )
        )
    assert manager.docker("service", "inspect", "--format", "{{.ID}}", foreign_id) == foreign_id
    assert manager.docker("network", "inspect", "--format", "{{.Name}}", name) == name


def test_an_update_racing_another_change_is_retried_with_the_new_version(
    swarm: Cluster, engine: SwarmCluster, run_id: str
):
    """A real concurrent change between Berth's read and its write (the CLI adds a label
    to the service just after the driver read its version): the engine answers "update
    out of sequence", the driver reads again and its spec wins."""
    labels = managed_labels({"test-run": run_id})
    request = SwarmServiceRequest(
        name=f"bsw2-race-{run_id}", image="busybox:latest", labels=labels, replicas=0
    )
    service_id = engine.create_service(request)
    reads = []

    class Racing(SwarmCluster):
        def _own_service(self, ident: str) -> dict:
            doc = super()._own_service(ident)
            reads.append(doc["Version"]["Index"])
            if len(reads) == 1:
                swarm.manager.docker("service", "update", "--detach", "--label-add", "x=1", ident)
            return doc

    with Racing(swarm.manager.endpoint, timeout=30) as racing:
        racing.update_service(service_id, replace(request, env={"A": "2"}))
    assert len(reads) == 2 and reads[1] > reads[0]
    env = swarm.manager.docker(
        "service", "inspect", service_id, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Env}}"
    )
    assert env == "[A=2]"
    [listed] = engine.list_services({"test-run": run_id})
    assert listed.replicas_desired == 0 and "x" not in listed.labels  # Berth's spec won

    # a stale read twice in a row is an error, not a loop
    reads.clear()

    class AlwaysRacing(SwarmCluster):
        def _own_service(self, ident: str) -> dict:
            doc = super()._own_service(ident)
            reads.append(doc["Version"]["Index"])
            swarm.manager.docker("service", "update", "--detach", "--label-add", "y=1", ident)
            return doc

    with (
        AlwaysRacing(swarm.manager.endpoint, timeout=30) as racing,
        pytest.raises(EngineError, match="out of sequence"),
    ):
        racing.update_service(service_id, request)
    assert len(reads) == 2
    engine.remove_service(service_id)
    assert engine.list_services({"test-run": run_id}) == []
