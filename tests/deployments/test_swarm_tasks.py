"""What a Swarm task row offers, without an engine (apps.deployments.swarm_tasks): the
shell, stats and inspect view only on the endpoint's node, logs everywhere, no
start/stop/restart/remove; the stack page's row, the API's node fields, the service
refusing an action, the shell page and the inspect API saying why. The same on the
real swarm: tests/swarm/test_swarm_tasks.py."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.deployments import services, swarm_tasks
from apps.deployments.models import Container, Stack
from apps.hosts.engine.swarm import node_engine_needed, task_status
from apps.hosts.models import Host, SwarmNode
from tests.deployments.test_container_rows import add, page, row_of
from tests.portal import growth

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("swarm", "node", "endpoint", "refused"),
    [
        (False, None, False, False),  # a single engine: everything reachable
        (True, "manager-1", True, False),  # the node Berth talks to
        (True, "worker-1", False, True),
        (True, None, False, True),  # the heartbeat has not recorded the node yet
    ],
)
def test_reach_problem(swarm, node, endpoint, refused):
    for what in ("shell", "stats", "inspect"):
        problem = swarm_tasks.reach_problem(what, swarm=swarm, node=node, endpoint=endpoint)
        assert bool(problem) == refused
        if refused:
            assert problem == node_engine_needed(what, node or swarm_tasks.UNKNOWN_NODE)
            assert "needs the node's engine" in problem or "need the node's engine" in problem
            assert (node or "(not known yet)") in problem
            assert "logs are read through the manager" in problem


def test_the_sentences_name_what_needs_the_engine():
    assert node_engine_needed("shell", "w1").startswith(
        "The shell needs the node's engine: this task runs on node w1"
    )
    assert node_engine_needed("stats", "w1").startswith("Live stats need the node's engine")
    with pytest.raises(ValueError, match="unknown use"):
        swarm_tasks.reach_problem("attach", swarm=True, node="w1", endpoint=False)


def test_a_task_document_reads_as_a_container_status():
    doc = {
        "ID": "t1",
        "Name": "web.2",
        "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c0ffee"}},
    }
    status = task_status(doc)
    assert (status.id, status.name, status.state, status.exit_code) == (
        "t1",
        "web.2",
        "running",
        None,
    )
    failed = {"Status": {"State": "failed", "Err": "boom", "ContainerStatus": {"ExitCode": 3}}}
    assert (task_status(failed).state, task_status(failed).exit_code) == ("exited", 3)
    assert task_status(failed).error == "boom"
    assert task_status({"Status": {"State": "preparing"}}).state == "created"
    assert task_status({}).state == "exited"


# --- the rows -------------------------------------------------------------------------------


@pytest.fixture
def cluster(db) -> Host:
    host = Host.objects.create(name="cluster", endpoint="tcp://192.0.2.2:2376", kind="swarm")
    return host


def node(host: Host, name: str, endpoint: bool) -> SwarmNode:
    return SwarmNode.objects.create(
        host=host, node_id=f"id-{name}", hostname=name, role="worker", availability="active",
        state="ready", is_endpoint=endpoint,
    )  # fmt: skip


@pytest.fixture
def stack(tenant_a):
    stack = growth.add_stacks(tenant_a.environments.first(), 1)[0]
    stack.containers.all().delete()
    return stack


def test_the_stack_page_shows_the_node_and_offers_only_what_works(
    client_for, member, stack, cluster
):
    here = add(stack, "web.1", host=cluster, state="running", node=node(cluster, "mgr", True))
    there = add(stack, "web.2", host=cluster, state="running", node=node(cluster, "w1", False))
    html = page(client_for(member), stack)
    near, far = row_of(html, here), row_of(html, there)
    assert "node mgr" in near and "node w1" in far
    assert reverse("stacks:shell", args=[here.pk]) in near and "data-stats" not in near
    assert reverse("stacks:shell", args=[there.pk]) not in far
    assert 'data-stats="off"' in far
    assert "data-no-shell" in far and "The shell needs the node&#x27;s engine" in far
    for row in (near, far):
        assert "<button" not in row  # no start/stop/restart/remove for a task
        assert "data-swarm-task" in row and "Swarm starts, stops and replaces" in row
        assert "Logs</a>" in row


def test_an_action_on_a_task_is_refused_with_a_reason(member, stack, cluster, client_for):
    task = add(stack, "web.1", host=cluster, state="running", node=node(cluster, "w1", False))
    for action in ("start", "stop", "restart", "remove"):
        with pytest.raises(ValidationError, match="task of a Swarm service"):
            getattr(services, f"{action}_container")(member, task)
    assert not Container.objects.get(pk=task.pk).user_stopped
    response = client_for(member).post(reverse("stacks:container_stop", args=[task.pk]),
                                       HTTP_HX_REQUEST="true")  # fmt: skip
    assert response.status_code == 204
    assert "one task cannot be stopped on its own" in response["HX-Trigger"]


def test_the_api_names_the_node_and_whether_its_engine_is_reached(
    session_api, member, stack, cluster
):
    add(stack, "web.1", host=cluster, state="running", node=node(cluster, "mgr", True))
    add(stack, "web.2", host=cluster, state="running", node=node(cluster, "w1", False))
    add(stack, "web.3", host=cluster, state="created")  # its node not recorded yet
    add(stack, "single", state="running")
    body = session_api(member).get(f"/api/v1/stacks/{stack.pk}/").json()
    found = {c["name"]: (c["node"], c["node_engine"]) for c in body["containers"]}
    assert found == {
        "web.1": ("mgr", True),
        "web.2": ("w1", False),
        "web.3": (None, False),
        "single": (None, None),
    }


def test_a_node_with_a_checked_engine_endpoint_is_reached(
    client_for, session_api, member, stack, cluster
):
    checked, failing = node(cluster, "w1", False), node(cluster, "w2", False)
    SwarmNode.objects.filter(pk=checked.pk).update(
        engine_endpoint="unix:///run/w1.sock", engine_verified_at=timezone.now()
    )
    SwarmNode.objects.filter(pk=failing.pk).update(
        engine_endpoint="unix:///run/w2.sock", engine_error="did not answer"
    )
    here = add(stack, "web.1", host=cluster, state="running", node=checked)
    there = add(stack, "web.2", host=cluster, state="running", node=failing)
    html = page(client_for(member), stack)
    assert reverse("stacks:shell", args=[here.pk]) in row_of(html, here)
    assert reverse("stacks:shell", args=[there.pk]) not in row_of(html, there)
    assert "/run/w" not in html  # tenants never see a node's endpoint
    body = session_api(member).get(f"/api/v1/stacks/{stack.pk}/")
    found = {c["name"]: c["node_engine"] for c in body.json()["containers"]}
    assert found == {"web.1": True, "web.2": False}
    assert "/run/w" not in body.content.decode()


def test_the_shell_page_and_inspect_say_why_not(client_for, session_api, member, stack, cluster):
    far = add(stack, "web.2", host=cluster, state="running", node=node(cluster, "w1", False))
    html = client_for(member).get(reverse("stacks:shell", args=[far.pk])).content.decode()
    assert "The shell needs the node&#x27;s engine: this task runs on node w1" in html
    response = session_api(member).get(f"/api/v1/containers/{far.pk}/inspect/")
    assert response.status_code == 409
    assert "inspect view needs the node's engine" in response.json()["detail"]
    assert Stack.objects.filter(pk=stack.pk).exists()
