"""A Swarm cluster as a Berth host, on a real 3-node swarm (tests/swarm/cluster.py):
its nodes appear with their roles, Berth drains a worker and Swarm moves a service's
task off it, activates it again, and the heartbeat sees a worker whose engine died go
down and come back. No mocks: the swarm, the registry and the engines are real.

One swarm serves the whole session; each test leaves the nodes active and ready.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from apps.activity.models import Event
from apps.hosts import services
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.models import Host, SwarmNode
from tests.conftest import PASSWORD
from tests.swarm.cluster import Cluster

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]
REPO = Path(settings.BASE_DIR)
LOSS_DEADLINE = 30.0


def heartbeat_until(host: Host, check, timeout: float, every: float = 1.0) -> float:
    """Run the host's heartbeat until `check(nodes by hostname)` holds; seconds taken."""
    started = time.monotonic()
    while True:
        services.heartbeat(host.pk)
        nodes = {n.hostname: n for n in SwarmNode.objects.filter(host=host)}
        if check(nodes):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            seen = [(n.hostname, n.state, n.availability) for n in nodes.values()]
            raise AssertionError(f"not within {timeout}s: {seen}")
        time.sleep(every)


@pytest.fixture
def swarm_host(swarm: Cluster, db) -> Host:
    host = services.register_host(
        actor=None, name=f"swarm-{swarm.run_id}", endpoint=swarm.manager.endpoint, kind="swarm"
    )
    return services.heartbeat(host.pk)


def test_nodes_appear_with_their_roles(swarm: Cluster, swarm_host: Host):
    assert swarm_host.state == Host.State.ACTIVE, swarm_host.last_error
    nodes = {n.hostname: n for n in SwarmNode.objects.filter(host=swarm_host)}
    assert sorted(nodes) == sorted(n.hostname for n in swarm.nodes)
    manager = nodes[swarm.manager.hostname]
    assert (manager.role, manager.manager_status) == ("manager", "leader")
    for node in swarm.nodes:
        row = nodes[node.hostname]
        assert row.node_id == node.node_id
        assert row.address == node.address
        assert (row.state, row.availability) == ("ready", "active")
        assert row.cpus and row.memory_bytes and row.engine_version
    assert [n.role for n in SwarmNode.objects.filter(host=swarm_host, role="worker")] == [
        "worker"
    ] * 2
    joined = Event.objects.filter(action="host.node.join", object_id=str(swarm_host.pk))
    assert joined.count() == 3
    # the cluster's figures: every ready, active node's CPUs
    assert swarm_host.cpus == int(sum(n.cpus for n in nodes.values()))


def test_a_second_heartbeat_changes_nothing(swarm_host: Host):
    before = Event.objects.count()
    services.heartbeat(swarm_host.pk)
    assert Event.objects.count() == before
    assert SwarmNode.objects.filter(host=swarm_host, gone_at__isnull=True).count() == 3


def test_a_worker_endpoint_is_not_a_cluster(swarm: Cluster, db):
    host = services.register_host(
        actor=None, name="not-a-manager", endpoint=swarm.node("worker1").endpoint, kind="swarm"
    )
    host = services.heartbeat(host.pk)
    assert host.state == Host.State.UNREACHABLE
    assert "worker, not a manager" in host.last_error
    assert not SwarmNode.objects.filter(host=host).exists()


def test_stack_operations_are_refused_clearly(swarm_host: Host):
    with get_engine(swarm_host) as engine:
        for call in (
            lambda: engine.ensure_network("berth-x", {}),
            lambda: engine.create_container(None),
            lambda: engine.pull("busybox"),
        ):
            with pytest.raises(EngineError, match="cannot be acted on there") as err:
                call()
            assert not err.value.retryable
        assert engine.list_managed() == []  # reads answer for the manager: nothing of Berth's


# --- drain and activate, with a real service ------------------------------------------------


@pytest.fixture
def web_service(swarm: Cluster, published, superuser, tmp_path) -> Iterator[str]:
    """A plain `docker service create` of the demo web image, two replicas on the workers
    (one each), pulled with the platform admin's registry login; removed afterwards."""
    name = f"bsw-web-{uuid.uuid4().hex[:6]}"
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "PATH": "/usr/bin:/bin:/usr/sbin"}
    registry = published.split("/", 1)[0]
    manager = swarm.manager
    subprocess.run(
        ["docker", "-H", manager.endpoint, "login", registry, "-u", superuser.username,
         "--password-stdin"],
        input=PASSWORD, text=True, capture_output=True, check=True, env=env, timeout=60,
    )  # fmt: skip
    manager.docker(
        "service", "create", "--detach", "--with-registry-auth", "--name", name,
        "--label", "io.berth.test=1", "--container-label", "io.berth.test=1",
        "--replicas", "2",
        "--constraint", "node.role==worker", "--endpoint-mode", "dnsrr", published,
        env=env,
    )  # fmt: skip
    try:
        wait_tasks(swarm, name, lambda on: on.get("worker1") == 1 and on.get("worker2") == 1)
        yield name
    finally:
        manager.docker("service", "rm", name, check=False)


def running_tasks(swarm: Cluster, service: str) -> dict[str, int]:
    """Running tasks of `service` per node name, as the manager lists them."""
    out = swarm.manager.docker(
        "service", "ps", service, "--filter", "desired-state=running", "--format", "{{json .}}"
    )
    by_host = {n.hostname: n.name for n in swarm.nodes}
    counts: dict[str, int] = {}
    for line in out.splitlines():
        task = json.loads(line)
        if task["CurrentState"].startswith("Running"):
            node = by_host.get(task["Node"], task["Node"])
            counts[node] = counts.get(node, 0) + 1
    return counts


def wait_tasks(swarm: Cluster, service: str, check, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = running_tasks(swarm, service)
        if check(counts):
            return counts
        if time.monotonic() > deadline:
            listing = swarm.manager.docker(
                "service", "ps", "--no-trunc", service, "--format",
                "{{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
            )  # fmt: skip
            nodes = swarm.manager.docker("node", "ls")
            logs = {n.name: n.log.read_text()[-1500:] for n in swarm.worker_nodes}
            raise AssertionError(f"{service} per node: {counts}\n{listing}\n{nodes}\n{logs}")
        time.sleep(0.5)


def test_drain_from_berth_moves_the_task_and_activate_brings_the_node_back(
    swarm: Cluster, swarm_host: Host, web_service: str, admin_client, superuser
):
    worker1 = swarm.node("worker1")
    services.heartbeat(swarm_host.pk)
    row = SwarmNode.objects.get(host=swarm_host, node_id=worker1.node_id)
    assert [t["service"] for t in row.tasks] == [web_service]

    # Drain through the host page, as an operator would
    admin_client.force_login(superuser)
    url = reverse("hosts:node_availability", args=[swarm_host.pk, worker1.node_id])
    response = admin_client.post(url, {"availability": "drain"}, follow=True)
    assert response.status_code == 200
    assert f"Node {worker1.hostname} is drained." in response.content.decode()
    assert swarm.node_state(worker1) == ("ready", "drain")
    moved = wait_tasks(
        swarm, web_service, lambda on: on.get("worker2") == 2 and "worker1" not in on
    )
    assert moved == {"worker2": 2}
    assert Event.objects.filter(action="host.node.availability", actor=superuser).exists()

    # The next heartbeat shows it on the page: drained, nothing running on it
    services.heartbeat(swarm_host.pk)
    row.refresh_from_db()
    assert row.availability == "drain"
    assert not [t for t in row.tasks if t["desired_state"] == "running"]
    page = admin_client.get(reverse("hosts:detail", args=[swarm_host.pk])).content.decode()
    assert "Drained" in page and web_service in page

    # Activate through the API
    api = reverse("api:host-node-availability", args=[swarm_host.pk, worker1.node_id])
    response = admin_client.post(api, {"availability": "active"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["availability"] == "active"
    assert swarm.node_state(worker1) == ("ready", "active")


def test_bad_availability_is_refused_without_touching_swarm(
    swarm: Cluster, swarm_host: Host, admin_client, superuser
):
    admin_client.force_login(superuser)
    worker1 = swarm.node("worker1")
    api = reverse("api:host-node-availability", args=[swarm_host.pk, worker1.node_id])
    response = admin_client.post(api, {"availability": "gone"}, content_type="application/json")
    assert response.status_code == 400
    assert "availability" in response.json()
    page = reverse("hosts:node_availability", args=[swarm_host.pk, worker1.node_id])
    response = admin_client.post(page, {"availability": "gone"}, follow=True)
    assert response.status_code == 200
    assert "Use one of active, pause, drain" in response.content.decode()
    assert swarm.node_state(worker1) == ("ready", "active")


# --- node loss ------------------------------------------------------------------------------


def test_a_lost_worker_is_shown_down_then_ready_again(swarm: Cluster, swarm_host: Host, capsys):
    worker2 = swarm.node("worker2")
    swarm.kill_engine(worker2)
    try:
        lost = heartbeat_until(
            swarm_host, lambda nodes: nodes[worker2.hostname].state == "down", LOSS_DEADLINE
        )
    finally:
        swarm.start_engine(worker2)
    back = heartbeat_until(swarm_host, lambda nodes: nodes[worker2.hostname].state == "ready", 60)
    with capsys.disabled():
        print(
            f"\nnode loss: down in Berth after {lost:.1f}s; ready again {back:.1f}s after restart"
        )
    actions = list(
        Event.objects.filter(object_id=str(swarm_host.pk), data__node=worker2.node_id)
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["host.node.down", "host.node.ready"]
    host = Host.objects.get(pk=swarm_host.pk)
    assert host.state == Host.State.ACTIVE  # a lost worker is not a lost cluster
