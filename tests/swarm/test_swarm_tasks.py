"""One task of a swarm stack on the real 3-node swarm (issue 14): its node on the stack
page, in the API and on the host page; its logs (tail, follow, the service's merged log,
the download) read through the manager whatever node runs it; its shell and live stats
on the node whose engine Berth reaches (the manager it is registered with), refused
with a sentence (close 4405) for a task on a worker; start/stop/restart/remove refused;
another tenant sees none of it (4404 on every socket, 404 on the pages).

Then a task pinned on a worker, reached through the engine endpoint a platform admin
gives that node (API, host page, command): shell, stats and inspect work; an endpoint
of another node's engine is refused at the save, by the driver at use, and by the
heartbeat; tenants can neither set nor see endpoints.

The stack is removed at the end through Berth, and the swarm_host fixture removes
whatever is left by its tenant-id label, also when a test fails.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from apps.activity.models import Event
from apps.deployments import services
from apps.deployments.models import Container, Service, Stack
from apps.hosts import services as host_services
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host, SwarmNode
from apps.logs import collector as logs
from apps.logs.models import LogLine, LogSource
from apps.monitoring import collector as metrics
from apps.monitoring.models import ContainerSample, HostSample, Series
from tests.fixtures.live import close_code, open_socket, receive_json, run, session_headers, until
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_stacks import converge

pytestmark = [
    pytest.mark.engine,
    pytest.mark.swarm,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

COMPOSE = """
services:
  web:
    image: {image}
    deploy:
      replicas: 1
      placement: {{constraints: ["node.role==manager"]}}
    stop_grace_period: 1s
  work:
    image: {image}
    entrypoint: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo TICK $$i; sleep 0.5; done"]
    healthcheck: {{disable: true}}
    deploy:
      replicas: 2
      placement: {{constraints: ["node.role==worker"]}}
    stop_grace_period: 0s
"""


async def log_lines(comm, count: int, timeout: float = 30) -> list[str]:
    """The text of `logs` messages (acked) until `count` lines came."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        message = await receive_json(comm, timeout=max(deadline - time.monotonic(), 0.1))
        if message["type"] == "logs":
            lines += [entry["line"] for entry in message["lines"]]
            await comm.send_json_to({"type": "ack", "seq": message["seq"]})
        elif message["type"] != "dropped":
            return [*lines, f"<{message}>"]
    return lines


async def refusal(path: str, headers) -> tuple[dict, int]:
    comm = await open_socket(path, headers)
    message = await receive_json(comm)
    return message, await close_code(comm)


def ticks(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("TICK ")]


@pytest.fixture
def shop(swarm_host: Host, published: str, member, owner, env_a):
    stack = services.create_stack(member, env_a, "tasks", compose=COMPOSE.format(image=published))
    stack = converge(stack)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    host_services.heartbeat(swarm_host.pk)  # the host page's tasks
    yield stack
    found = Stack.objects.filter(pk=stack.pk).first()
    if found is not None:
        services.remove(owner, found)
        converge(found)


@pytest.mark.timeout(600)
def test_a_task_on_any_node(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    shop: Stack,
    member,
    viewer,
    outsider,
    superuser,
    client_for,
    session_api,
):
    manager = swarm.manager.node_id
    rows = {c.name: c for c in Container.objects.filter(stack=shop).select_related("node")}
    assert set(rows) == {"web.1", "work.1", "work.2"}
    web, work = rows["web.1"], rows["work.1"]
    # the node each task runs on, and only the manager's engine reached
    assert web.node.node_id == manager and web.node.is_endpoint
    assert {rows[n].node.node_id for n in ("work.1", "work.2")} <= {
        n.node_id for n in swarm.worker_nodes
    }
    assert not work.node.is_endpoint
    assert SwarmNode.objects.filter(host=swarm_host, is_endpoint=True).count() == 1

    body = session_api(member).get(f"/api/v1/stacks/{shop.pk}/").json()
    nodes = {c["name"]: (c["node"], c["node_engine"]) for c in body["containers"]}
    assert nodes["web.1"] == (web.node.hostname, True)
    assert nodes["work.1"] == (work.node.hostname, False)

    page = client_for(member).get(reverse("stacks:detail", args=[shop.pk])).content.decode()
    assert f"node {work.node.hostname}" in page
    assert reverse("stacks:shell", args=[web.pk]) in page
    assert reverse("stacks:shell", args=[work.pk]) not in page
    assert reverse("stacks:container_restart", args=[work.pk]) not in page

    headers = session_headers(member)
    service = Service.objects.get(stack=shop, name="work")

    async def logs_of_a_worker_task():
        # tail, not following: the last lines of the task on a worker, through the manager
        comm = await open_socket(f"/ws/containers/{work.pk}/logs/?follow=0&tail=3", headers)
        lines = await log_lines(comm, 3)
        assert len(ticks(lines)) == 3, lines
        assert (await receive_json(comm))["type"] == "end"
        assert await close_code(comm) == 1000
        # following: its tail, then new lines as they are printed
        comm = await open_socket(f"/ws/containers/{work.pk}/logs/?tail=2", headers)
        seen = ticks(await log_lines(comm, 6))
        assert len(seen) >= 6 and seen == sorted(seen) and len(set(seen)) == len(seen), seen
        await comm.disconnect(timeout=5)
        # the service's merged log: both tasks, each line naming its task
        comm = await open_socket(f"/ws/services/{service.pk}/logs/?follow=0&tail=2", headers)
        merged = []
        while True:
            message = await receive_json(comm)
            if message["type"] != "logs":
                break
            merged += message["lines"]
        assert message["type"] == "end", message
        assert {entry["container"] for entry in merged} == {"work.1", "work.2"}
        await close_code(comm)

    run(logs_of_a_worker_task())

    download = client_for(member).get(reverse("stacks:container_logs_download", args=[work.pk]))
    assert download.status_code == 200
    assert b" stdout TICK " in b"".join(download.streaming_content)

    async def shell_and_stats():
        # the manager's task: a shell and live stats through the manager's engine
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        assert (await receive_json(comm))["type"] == "ready"
        await comm.send_to(bytes_data=b"echo on-$((6*7))\r")
        output = b""
        while b"on-42" not in output:
            message = await comm.receive_output(timeout=10)
            output += message.get("bytes") or b""
        await comm.send_to(bytes_data=b"exit\r")
        await until(comm, lambda m: m["type"] == "exit")
        assert await close_code(comm) == 1000
        comm = await open_socket(f"/ws/containers/{web.pk}/stats/", headers)
        sample = await receive_json(comm, timeout=20)
        assert sample["type"] == "stats" and sample["memory"]["usage"] > 0, sample
        await comm.disconnect(timeout=5)
        # a worker's task: refused with the reason, before any engine call
        for kind, words in (("shell", "The shell needs"), ("stats", "Live stats need")):
            message, code = await refusal(f"/ws/containers/{work.pk}/{kind}/", headers)
            assert code == 4405, (kind, message)
            assert message["message"].startswith(f"{words} the node's engine"), message
            assert work.node.hostname in message["message"]

    run(shell_and_stats())

    # actions: refused by the service, whatever the node
    for action in ("stop", "restart", "remove"):
        with pytest.raises(ValidationError, match="task of a Swarm service"):
            getattr(services, f"{action}_container")(member, Container.objects.get(pk=web.pk))

    # the host page: the tasks under their nodes, with their tenant and stack
    html = client_for(superuser).get(reverse("hosts:detail", args=[swarm_host.pk])).content
    html = html.decode()
    for row in rows.values():
        assert f'data-task="{row.engine_id}"' in html
    assert f"acme/{shop.name}" in html and "data-endpoint-node" in html
    nodes = session_api(superuser).get(f"/api/v1/hosts/{swarm_host.pk}/nodes/").json()
    listed = {t["task_id"]: t["berth"] for n in nodes for t in n["tasks"]}
    assert listed[work.engine_id] == {
        "tenant": "acme", "stack": shop.pk, "stack_name": shop.name, "container": work.pk
    }  # fmt: skip
    assert [n["hostname"] for n in nodes if n["is_endpoint"]] == [web.node.hostname]

    # the driver checks the node itself: the pages' rule is not the only guard
    assert engine.inspect_container(work.engine_id).state == "running"
    with pytest.raises(EngineError, match="^The shell needs the node's engine") as refused:
        engine.task_container(work.engine_id, "shell")
    assert refused.value.status == 409 and not refused.value.retryable
    assert engine.task_container(web.engine_id, "shell")  # the manager's own container

    # another tenant: nothing of it, on any socket or page
    stranger, reader = session_headers(outsider), session_headers(viewer)

    async def cross_tenant():
        for path in (
            f"/ws/containers/{work.pk}/logs/",
            f"/ws/containers/{web.pk}/stats/",
            f"/ws/containers/{web.pk}/shell/",
            f"/ws/services/{web.service_id}/logs/",
        ):
            comm = await open_socket(path, stranger)
            assert await close_code(comm) == 4404, path
        # and a viewer of the tenant reads logs but opens no shell
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", reader)
        assert await close_code(comm) == 4403

    run(cross_tenant())
    outside = client_for(outsider)
    assert session_api(member).get(f"/api/v1/hosts/{swarm_host.pk}/nodes/").status_code == 404
    assert outside.get(reverse("hosts:detail", args=[swarm_host.pk])).status_code == 404
    assert client_for(member).get(reverse("hosts:detail", args=[swarm_host.pk])).status_code == 404
    for name in ("stacks:container_logs", "stacks:shell", "stacks:container_logs_download"):
        assert outside.get(reverse(name, args=[work.pk])).status_code == 404, name
    answer = session_api(outsider).get(f"/api/v1/containers/{web.pk}/inspect/")
    assert answer.status_code == 404
    # the inspect view: the manager's task from its engine, a worker's refused (409)
    api = session_api(member)
    assert api.get(f"/api/v1/containers/{web.pk}/inspect/").status_code == 200
    refused = api.get(f"/api/v1/containers/{work.pk}/inspect/")
    assert refused.status_code == 409 and "node's engine" in refused.json()["detail"]


PINNED = """
services:
  work:
    image: {image}
    entrypoint: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo TICK $$i; sleep 0.5; done"]
    healthcheck: {{disable: true}}
    deploy:
      replicas: 1
      placement: {{constraints: ["node.hostname=={worker}"]}}
    stop_grace_period: 0s
"""


@pytest.fixture
def pinned(swarm: Cluster, swarm_host: Host, published: str, member, owner, env_a):
    """A stack whose one task runs on worker1 (placement node.hostname==<worker1>)."""
    worker = swarm.worker_nodes[0]
    compose = PINNED.format(image=published, worker=worker.hostname)
    stack = converge(services.create_stack(member, env_a, "pinned", compose=compose))
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    host_services.heartbeat(swarm_host.pk)
    yield stack
    found = Stack.objects.filter(pk=stack.pk).first()
    if found is not None:
        services.remove(owner, found)
        converge(found)


def measured(host: Host, task: Container) -> list[Series]:
    """The container series of the task's container on its node (task id label)."""
    return list(Series.objects.filter(host_pk=host.pk, container_pk=task.pk))


def collect_in_thread(host: Host) -> logs.PassResult:
    try:
        return logs.collect_host(host.pk)
    finally:
        connection.close()


def collect_logs(host: Host, task: Container) -> list[int]:
    """A collection pass over the swarm host (waiting out the settle time first), then the
    task's stored TICK numbers in time order."""
    time.sleep(1.5)
    passed = logs.collect_host(host.pk)
    assert not passed.errors, passed.errors
    source = LogSource.objects.get(host=host, engine_id=task.engine_id)
    assert (source.tenant_id, source.stack_pk, source.service) == (
        task.stack.tenant_id, task.stack_id, "work"
    )  # fmt: skip
    assert source.container == "work.1"
    lines = LogLine.objects.filter(source=source).order_by("ts", "pk")
    return ticks(list(lines.values_list("text", flat=True)))


async def shell_echo(path: str, headers) -> bytes:
    """Open the shell, run `echo`, return what the terminal printed up to its output."""
    comm = await open_socket(path, headers)
    ready = await receive_json(comm, timeout=20)
    assert ready["type"] == "ready", ready
    await comm.send_to(bytes_data=b"echo node-$((6*7))\r")
    output = b""
    while b"node-42\r\n" not in output:
        message = await comm.receive_output(timeout=10)
        output += message.get("bytes") or b""
    await comm.send_to(bytes_data=b"exit\r")
    await until(comm, lambda m: m["type"] == "exit")
    assert await close_code(comm) == 1000
    return output


async def stats_sample(path: str, headers) -> dict:
    comm = await open_socket(path, headers)
    sample = await receive_json(comm, timeout=20)
    await comm.disconnect(timeout=5)
    return sample


@pytest.mark.timeout(600)
def test_a_worker_task_through_its_node_engine(
    swarm: Cluster,
    swarm_host: Host,
    pinned: Stack,
    member,
    outsider,
    superuser,
    client_for,
    session_api,
):
    worker, other = swarm.worker_nodes
    work = Container.objects.select_related("node").get(stack=pinned, name="work.1")
    assert work.node.node_id == worker.node_id and not work.node.reaches_engine
    headers = session_headers(member)
    admin, api = session_api(superuser), session_api(member)
    url = f"/api/v1/hosts/{swarm_host.pk}/nodes/{worker.node_id}/engine/"

    async def refused(words: str) -> None:
        for kind in ("shell", "stats"):
            message, code = await refusal(f"/ws/containers/{work.pk}/{kind}/", headers)
            assert code == 4405, (kind, message)
            assert worker.hostname in message["message"], message
            assert words in message["message"], message

    # without the node's engine endpoint: refused, saying what the operator must do
    run(refused("sets the node's engine endpoint"))
    # ... its metrics are not measured, and the pass says why; its logs are collected
    # through the manager
    passed = metrics.collect()
    assert f"{swarm_host.name}: node {worker.hostname} has no engine endpoint" in (
        passed.unmeasured
    ), passed
    assert not measured(swarm_host, work), "measured without the node's engine"
    charts = client_for(member).get(reverse("portal:monitoring"), {"of": f"stack:{pinned.pk}"})
    assert f"work.1: runs on node {worker.hostname}, whose engine" in charts.content.decode()
    first = collect_logs(swarm_host, work)
    assert first and first == list(range(1, len(first) + 1)), first
    answer = api.get(f"/api/v1/containers/{work.pk}/inspect/")
    assert answer.status_code == 409 and "engine endpoint" in answer.json()["detail"]

    # bad input: 400 naming the field, before anything is saved
    bad = [
        (url, {"endpoint": "http://10.0.0.7:2376"}, "endpoint", "tcp://"),
        (url, {"endpoint": "unix://relative.sock"}, "endpoint", "absolute"),
        (url, {"endpoint": "tcp://127.0.0.1:1", "tls_ca_cert": "x"}, "tls_client_cert", "together"),
        (url, {"endpoint": worker.endpoint, "tls_ca_cert": "x"}, "tls_ca_cert", "tcp://"),
        (url, {"endpoint": worker.endpoint, "colour": "red"}, "colour", ""),
        (url, {"endpoint": f"unix://{worker.state}/nothing.sock"}, "endpoint", "did not answer"),
        (url, {"endpoint": other.endpoint}, "endpoint", "another node's engine"),
        (url, {"endpoint": swarm.manager.endpoint}, "endpoint", "another node's engine"),
        (url.replace(worker.node_id, "nosuchnode"), {"endpoint": worker.endpoint}, "node", ""),
        (url.replace(worker.node_id, swarm.manager.node_id), {"endpoint": worker.endpoint},
         "node", "already reaches"),
    ]  # fmt: skip
    for path, body, field, words in bad:
        answer = admin.post(path, body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        assert field in answer.json(), (body, answer.json())
        assert words in " ".join(answer.json()[field]), (body, answer.json())
    assert not SwarmNode.objects.get(pk=work.node.pk).engine_endpoint

    # a tenant can neither set nor see endpoints (404: hosts do not exist for them)
    assert api.post(url, {"endpoint": worker.endpoint}, format="json").status_code == 404
    assert session_api(outsider).delete(url).status_code == 404
    page = reverse("hosts:node_engine", args=[swarm_host.pk, worker.node_id])
    assert client_for(member).get(page).status_code == 404
    assert client_for(member).post(page, {"endpoint": worker.endpoint}).status_code == 404
    assert not SwarmNode.objects.get(pk=work.node.pk).engine_endpoint

    # the operator sets it (the API checks the engine is that node), a heartbeat keeps it
    answer = admin.post(url, {"endpoint": worker.endpoint}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["engine_endpoint"] == worker.endpoint
    assert answer.json()["reaches_engine"] and answer.json()["engine_verified_at"]
    host_services.heartbeat(swarm_host.pk)
    node = SwarmNode.objects.get(pk=work.node.pk)
    assert node.engine_endpoint == worker.endpoint and node.reaches_engine, node.engine_error
    body = api.get(f"/api/v1/stacks/{pinned.pk}/")
    assert body.json()["containers"][0]["node_engine"] is True
    assert str(worker.state) not in body.content.decode()  # tenants never see endpoints
    stack_page = client_for(member).get(reverse("stacks:detail", args=[pinned.pk])).content
    assert reverse("stacks:shell", args=[work.pk]) in stack_page.decode()
    assert str(worker.state) not in stack_page.decode()

    # now the shell, live stats and inspect of the worker's task work, through its engine
    async def reached() -> None:
        output = await shell_echo(f"/ws/containers/{work.pk}/shell/", headers)
        assert b"node-42" in output
        sample = await stats_sample(f"/ws/containers/{work.pk}/stats/", headers)
        assert sample["type"] == "stats" and sample["memory"]["usage"] > 0, sample

    run(reached())

    # one metrics pass measures the worker's task through its node's engine, with its
    # tenant, stack and service; the other worker (no endpoint) is still said unmeasured
    passed = metrics.collect()
    assert not any(worker.hostname in gap for gap in passed.unmeasured), passed
    assert f"{swarm_host.name}: node {other.hostname} has no engine endpoint" in (
        passed.unmeasured
    ), passed
    series = measured(swarm_host, work)
    assert len(series) == 1, series
    row = series[0]
    assert (row.tenant_id, row.stack_pk, row.service_name) == (
        pinned.tenant_id, pinned.pk, "work"
    )  # fmt: skip
    assert row.container_pk == work.pk and row.host_pk == swarm_host.pk
    sample = ContainerSample.objects.filter(series=row).latest("at")
    assert sample.memory_bytes > 0 and sample.cpu_ns > 0, sample
    # the host's totals cover the nodes measured: their containers and their size
    total = HostSample.objects.filter(series__key=f"h{swarm_host.pk}").latest("at")
    both = SwarmNode.objects.filter(node_id__in=[swarm.manager.node_id, worker.node_id])
    assert total.cpus == round(sum(n.cpus for n in both)) and total.containers >= 1, total
    assert total.memory_bytes >= sample.memory_bytes
    html = client_for(superuser).get(reverse("hosts:detail", args=[swarm_host.pk])).content
    assert f"node {other.hostname} has no engine endpoint" in html.decode()
    of_host = {"of": f"host:{swarm_host.pk}"}
    charts = client_for(superuser).get(reverse("portal:monitoring"), of_host)
    assert f"node {other.hostname} has no engine endpoint" in charts.content.decode()
    assert f"node {worker.hostname} has" not in charts.content.decode()
    # logs: now through the node's engine, continuing exactly where the manager's stopped,
    # also with two passes at once (one holds the lease) and a pass run again
    with ThreadPoolExecutor(2) as pool:
        passes = list(pool.map(lambda _: collect_in_thread(swarm_host), range(2)))
    assert sum(p.collected for p in passes) >= 1 and not any(p.errors for p in passes), passes
    later = collect_logs(swarm_host, work)
    assert later == list(range(1, len(later) + 1)), later
    assert len(later) > len(first) + 2, (len(first), len(later))
    # another tenant sees none of these lines (search and API); the member does
    assert not LogLine.objects.visible_to(outsider).filter(text__startswith="TICK").exists()
    found = session_api(outsider).get("/api/v1/logs/", {"q": "TICK"}).json()["results"]
    assert found == []
    mine = session_api(member).get("/api/v1/logs/", {"q": "TICK", "container": "work.1"})
    assert mine.status_code == 200 and mine.json()["results"], mine.content

    shell_page = client_for(member).get(reverse("stacks:shell", args=[work.pk])).content.decode()
    assert "data-shell-choice" in shell_page and '<option value="/bin/sh">' in shell_page
    answer = api.get(f"/api/v1/containers/{work.pk}/inspect/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["labels"]["com.docker.swarm.task.id"] == work.engine_id
    container_id = worker.docker("ps", "-q", "--no-trunc", "--filter",
                                 f"label=com.docker.swarm.task.id={work.engine_id}")  # fmt: skip
    assert container_id and container_id in answer.json()["id"]

    # another tenant still reaches nothing of it through the node's engine
    stranger = session_headers(outsider)

    async def cross_tenant() -> None:
        for kind in ("shell", "stats", "logs"):
            comm = await open_socket(f"/ws/containers/{work.pk}/{kind}/", stranger)
            assert await close_code(comm) == 4404, kind

    run(cross_tenant())
    outside = session_api(outsider)
    assert outside.get(f"/api/v1/containers/{work.pk}/inspect/").status_code == 404
    assert client_for(outsider).get(reverse("stacks:shell", args=[work.pk])).status_code == 404

    # the endpoint now reaches another node's engine (bypassing the save's check, as if
    # the address had been given to another machine): the driver refuses before any exec
    SwarmNode.objects.filter(pk=work.node.pk).update(engine_endpoint=other.endpoint)
    swapped = Host.objects.get(pk=swarm_host.pk)
    with pytest.raises(EngineError, match="reaches another node's engine") as wrong:
        get_engine(swapped).task_container(work.engine_id, "shell")
    assert wrong.value.status == 409

    async def mismatched() -> None:
        comm = await open_socket(f"/ws/containers/{work.pk}/shell/", headers)
        message = await receive_json(comm, timeout=20)
        assert message["type"] == "error" and "another node's engine" in message["message"]
        assert await close_code(comm) == 4502
        comm = await open_socket(f"/ws/containers/{work.pk}/stats/", headers)
        message = await until(comm, lambda m: m["type"] != "stats", timeout=20)
        assert "another node's engine" in message[-1]["message"], message
        assert await close_code(comm) == 4502

    run(mismatched())
    answer = api.get(f"/api/v1/containers/{work.pk}/inspect/")
    assert answer.status_code == 409 and "another node's engine" in answer.json()["detail"]
    # ... and the heartbeat marks it: refused up front again, the host page says why
    host_services.heartbeat(swarm_host.pk)
    node = SwarmNode.objects.get(pk=work.node.pk)
    assert not node.reaches_engine and "another node's engine" in node.engine_error
    lost = Event.objects.filter(action="host.node.engine_lost", object_id=str(swarm_host.pk))
    assert lost.exists()
    run(refused("engine endpoint"))
    html = client_for(superuser).get(reverse("hosts:detail", args=[swarm_host.pk])).content
    assert "data-node-engine" in html.decode() and "(failing)" in html.decode()

    # the host page's form: a bad endpoint is a form error, a good one is saved
    operator = client_for(superuser)
    answer = operator.post(page, {"endpoint": other.endpoint})
    assert answer.status_code == 200 and "another node&#x27;s engine" in answer.content.decode()
    assert operator.post(page, {"endpoint": worker.endpoint}).status_code == 302
    assert SwarmNode.objects.get(pk=work.node.pk).reaches_engine
    assert worker.endpoint in operator.get(page).content.decode()

    # the operator's command sets it right again; DELETE removes it
    out = io.StringIO()
    call_command("setnodeengine", swarm_host.name, worker.hostname, worker.endpoint, stdout=out)
    assert "answers as this node" in out.getvalue()
    assert SwarmNode.objects.get(pk=work.node.pk).reaches_engine
    with pytest.raises(CommandError, match="ENDPOINT: This endpoint reaches another node"):
        call_command("setnodeengine", swarm_host.name, worker.hostname, other.endpoint)
    assert admin.delete(url).status_code == 200
    node = SwarmNode.objects.get(pk=work.node.pk)
    assert not node.engine_endpoint and not node.reaches_engine
    run(refused("sets the node's engine endpoint"))
