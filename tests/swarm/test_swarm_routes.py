"""The frontier in front of a stack on the real 3-node swarm (issue 14, slice 4): a route
to a Swarm service publishes its port in host mode on each task's node (no routing mesh
here), the mirrored tasks carry their node's address and that port, and HAProxy on this
host reaches every task; a rolling update (start-first, one task at a time) goes through
the frontier with zero failed requests; removing the route unpublishes the port.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from apps.deployments import routes, services
from apps.deployments.models import Container, Route, Service, Stack
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from apps.traffic import frontier as frontier_config
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_stacks import converge, running, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

HOSTNAME = "shop.swarm.test"
COMPOSE = """
services:
  web:
    image: {image}
    deploy:
      replicas: 2
      placement: {{constraints: ["node.role==worker"]}}
      update_config: {{parallelism: 1, order: start-first, delay: 3s, monitor: 2s}}
    stop_grace_period: 1s
"""


class Load:
    """GETs through the frontier in a thread, counting what came back."""

    def __init__(self, server) -> None:
        self.server = server
        self.statuses: list[int] = []
        self.bodies: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.server.get(HOSTNAME, timeout=5)
                self.statuses.append(status)
                if status == 200:
                    self.bodies.add(_version(body))
            except OSError as exc:
                self.errors.append(repr(exc))
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _version(body: str) -> str:
    """The image version the page's title names (`<title>... - web 1.0</title>`)."""
    found = re.search(r" - web ([0-9.]+)</title>", body)
    return found.group(1) if found else body[:40]


def backend_servers(frontier) -> list[str]:
    config = (frontier.directory / "haproxy.cfg").read_text()
    return [line.split()[2] for line in config.splitlines() if line.strip().startswith("server c")]


@pytest.mark.timeout(900)
def test_a_route_reaches_swarm_tasks_and_survives_a_rolling_update(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    env_a,
    frontier,
    capsys,
):
    stack = services.create_stack(member, env_a, "shop", compose=COMPOSE.format(image=published))
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    web = Service.objects.get(stack=stack, name="web")

    routes.create_route(member, web, hostname=HOSTNAME, port=8080)
    stack = converge(stack)  # the route's port is published by the tasks
    tasks = wait_for("2 tasks publishing 8080",
                     lambda: (lambda ts: ts if len(ts) == 2 and all(t.ports for t in ts) else None)(
                         running(engine, stack, "web")))  # fmt: skip
    stack = converge(stack)
    nodes = {n.node_id: n.address for n in engine.list_nodes()}
    rows = {r.engine_id: r for r in Container.objects.filter(service=web)}
    for task in tasks:
        row = rows[task.task_id]
        [(target, port)] = task.ports
        assert target == 8080 and port > 0
        assert row.address == nodes[task.node_id]
        assert row.ports == [
            {"container_port": 8080, "protocol": "tcp", "host_ip": row.address, "host_port": port}
        ]
    frontier_config.apply("test")
    expected = sorted(f"{r.address}:{r.ports[0]['host_port']}" for r in rows.values())
    assert sorted(backend_servers(frontier)) == expected

    assert wait_for("the route answering", lambda: frontier.get(HOSTNAME)[0] == 200, timeout=30)
    status, body = frontier.get(HOSTNAME)
    assert status == 200 and _version(body) == "1.0"

    # A rolling update through the frontier: not one failed request.
    newer = published.replace(":1.0", ":1.1")
    mark = time.monotonic()
    with Load(frontier) as load:
        time.sleep(1)
        current = Stack.objects.get(pk=stack.pk)
        services.redeploy(member, current, compose=COMPOSE.format(image=newer))
        stack = converge(stack)
        wait_for("web on 1.1 everywhere",
                 lambda: (lambda ts: len(ts) == 2 and all(t.image == newer for t in ts))(
                     running(engine, stack, "web")), timeout=180)  # fmt: skip
        stack = converge(stack)
        wait_for("the frontier serving 1.1", lambda: "1.1" in load.bodies, timeout=30)
        time.sleep(2)
    took = time.monotonic() - mark
    failed = [s for s in load.statuses if s != 200]
    assert not load.errors and not failed, (load.errors[:5], failed[:20])
    assert len(load.statuses) > 50 and load.bodies == {"1.0", "1.1"}
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    status, body = frontier.get(HOSTNAME)
    assert status == 200 and _version(body) == "1.1"

    # The route gone: its port is no longer published, nothing routes there.
    routes.delete_route(member, Route.objects.get(hostname=HOSTNAME))
    stack = converge(stack)
    wait_for("the port unpublished",
             lambda: (lambda ts: len(ts) == 2 and not any(t.ports for t in ts))(
                 running(engine, stack, "web")), timeout=180)  # fmt: skip
    assert frontier.get(HOSTNAME)[0] == 404
    with capsys.disabled():
        print(
            f"\nswarm route: rolling update through the frontier {took:.1f}s, "
            f"{len(load.statuses)} requests, 0 failed"
        )


QUIET = """
services:
  web:
    image: {image}
    deploy: {{replicas: 1}}
    stop_grace_period: 0s
"""


@pytest.mark.timeout(600)
def test_the_periodic_pass_lists_the_cluster_once_whatever_the_stacks(
    swarm_host: Host, engine: SwarmCluster, published: str, member, env_a
):
    from apps.deployments import reconciler

    first = converge(
        services.create_stack(member, env_a, "one", compose=QUIET.format(image=published))
    )
    assert first.state == Stack.State.HEALTHY, first.state_reason
    reconciler.reconcile_host(swarm_host.pk)
    one = reconciler.reconcile_host(swarm_host.pk)

    second = converge(
        services.create_stack(member, env_a, "two", compose=QUIET.format(image=published))
    )
    assert second.state == Stack.State.HEALTHY, second.state_reason
    reconciler.reconcile_host(swarm_host.pk)
    two = reconciler.reconcile_host(swarm_host.pk)

    assert (one["stacks"], two["stacks"]) == (1, 2)
    assert two["api_calls"] == one["api_calls"], (one, two)
    assert Container.objects.filter(stack__in=[first, second], state="running").count() == 2
