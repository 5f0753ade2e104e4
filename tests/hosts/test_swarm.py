"""Swarm cluster hosts without an engine: parsing the manager's node and task documents,
recording a cluster's nodes (events, gone nodes), refusing stacks on a swarm, and the
pages' and API's answers to bad input. The real swarm is in tests/swarm/."""

from __future__ import annotations

import struct

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.activity.models import Event
from apps.hosts import services
from apps.hosts.engine import ClusterState, EngineError, EngineInfo, ManagedContainer, SwarmInfo
from apps.hosts.engine.streams import LogLine
from apps.hosts.engine.swarm import (
    NodeEngine,
    TaskLogStream,
    cluster_info,
    engine_identity_problem,
    node_task_containers,
    open_node_engine,
    parse_managed_task,
    parse_node,
    parse_swarm,
    parse_task,
    task_container_problem,
)
from apps.hosts.engine.swarm_logs import UntilReader, _StrictDemultiplexer, rfc3339_ns
from apps.hosts.engine.tls import forget_tls_files, tls_root
from apps.hosts.models import Host, SwarmNode
from tests.hosts.conftest import free_port
from tests.hosts.pki import ThrowawayCA

NODE = {
    "ID": "abc123",
    "Version": {"Index": 9},
    "Spec": {"Role": "worker", "Availability": "drain", "Labels": {"zone": "eu", "ssd": "1"}},
    "Description": {
        "Hostname": "node-2",
        "Resources": {"NanoCPUs": 4_000_000_000, "MemoryBytes": 8 << 30},
        "Engine": {"EngineVersion": "20.10.24"},
    },
    "Status": {"State": "down", "Addr": "10.0.0.3", "Message": "heartbeat failure"},
}
MANAGER = {
    "ID": "m1",
    "Spec": {"Role": "manager", "Availability": "active"},
    "Description": {"Hostname": "node-1"},
    "Status": {"State": "ready", "Addr": "0.0.0.0"},
    "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "10.0.0.2:2377"},
}
TASK = {
    "ID": "t1",
    "ServiceID": "s1",
    "Slot": 2,
    "NodeID": "abc123",
    "DesiredState": "running",
    "Spec": {"ContainerSpec": {"Image": "127.0.0.1:5000/library/web:1.0@sha256:00ff"}},
    "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c0ffee"}},
}


def test_parse_node_reads_role_availability_state_labels_resources():
    node = parse_node(NODE)
    assert (node.node_id, node.hostname, node.role) == ("abc123", "node-2", "worker")
    assert (node.availability, node.state, node.address) == ("drain", "down", "10.0.0.3")
    assert node.labels == {"zone": "eu", "ssd": "1"}
    assert (node.cpus, node.memory_bytes, node.engine_version) == (4.0, 8 << 30, "20.10.24")
    assert node.message == "heartbeat failure" and node.manager_status == ""


def test_a_manager_on_a_wildcard_address_is_placed_by_its_manager_address():
    node = parse_node(MANAGER)
    assert (node.address, node.manager_status) == ("10.0.0.2", "leader")


def test_parse_node_survives_a_sparse_document():
    node = parse_node({"ID": "x"})
    assert (node.node_id, node.state, node.labels, node.cpus) == ("x", "unknown", {}, 0.0)


def test_parse_task_names_its_service_and_drops_the_digest():
    task = parse_task(TASK, {"s1": "shop_web"})
    assert (task.service, task.slot, task.node_id) == ("shop_web", 2, "abc123")
    assert (task.state, task.desired_state, task.container_id) == ("running", "running", "c0ffee")
    assert task.image == "127.0.0.1:5000/library/web:1.0"
    assert parse_task({**TASK, "Slot": None}, {}).service == "s1"  # a global service's task


@pytest.mark.parametrize(
    "swarm, words, retryable",
    [
        ({"LocalNodeState": "inactive"}, "not part of an active swarm", False),
        ({"LocalNodeState": "pending"}, "not part of an active swarm", True),
        ({"LocalNodeState": "active", "ControlAvailable": False}, "worker, not a manager", False),
    ],
)
def test_only_an_active_manager_is_a_cluster(swarm, words, retryable):
    with pytest.raises(EngineError, match=words) as caught:
        parse_swarm({"Swarm": swarm}, "unix:///x.sock")
    assert caught.value.retryable is retryable


def test_parse_swarm_counts_managers_and_nodes():
    info = {
        "Swarm": {
            "LocalNodeState": "active",
            "ControlAvailable": True,
            "NodeID": "m1",
            "Managers": 1,
            "Nodes": 3,
            "Cluster": {"ID": "cl"},
        }
    }
    assert parse_swarm(info, "x") == SwarmInfo(cluster_id="cl", node_id="m1", managers=1, nodes=3)


def test_cluster_figures_count_only_usable_nodes():
    manager = EngineInfo("20.10", "1.41", "Debian", 2, 1, 0, 0)
    nodes = [parse_node(MANAGER), parse_node(NODE)]  # NODE is down and drained
    nodes[0] = type(nodes[0])(**{**nodes[0].__dict__, "cpus": 2.0, "memory_bytes": 100})
    tasks = [parse_task(TASK, {}), parse_task({**TASK, "DesiredState": "shutdown"}, {})]
    info = cluster_info(manager, nodes, tasks)
    assert (info.cpus, info.memory_bytes) == (2, 100)
    assert (info.containers_running, info.containers_total) == (2, 1)


# --- recording a cluster ------------------------------------------------------------------


def state_of(*nodes: dict, tasks: tuple[dict, ...] = ()) -> ClusterState:
    parsed = [parse_node(n) for n in nodes]
    return ClusterState(
        info=EngineInfo("20.10", "1.41", "Debian", 2, 1, 0, 0),
        swarm=SwarmInfo("cl", "m1", 1, len(parsed)),
        nodes=parsed,
        tasks=[parse_task(t, {"s1": "web"}) for t in tasks],
    )


@pytest.fixture
def swarm_host(db) -> Host:
    return services.register_host(
        actor=None, name="cluster", endpoint="tcp://10.0.0.2:2376", kind="swarm"
    )


def node_actions(host: Host) -> list[str]:
    return list(
        Event.objects.filter(action__startswith="host.node.", object_id=str(host.pk))
        .order_by("pk")
        .values_list("action", flat=True)
    )


def test_recording_adds_changes_and_marks_gone_nodes_with_events(swarm_host):
    ready = {
        **NODE,
        "Spec": {**NODE["Spec"], "Availability": "active"},
        "Status": {"State": "ready", "Addr": "10.0.0.3"},
    }
    services.record_cluster(swarm_host, state_of(MANAGER, ready, tasks=(TASK,)))
    assert node_actions(swarm_host) == ["host.node.join", "host.node.join"]
    row = SwarmNode.objects.get(host=swarm_host, node_id="abc123")
    assert [t["service"] for t in row.tasks] == ["web"]
    # the manager answering at the endpoint is the one node whose engine Berth reaches
    assert SwarmNode.objects.get(host=swarm_host, node_id="m1").is_endpoint
    assert not row.is_endpoint

    services.record_cluster(swarm_host, state_of(MANAGER, ready, tasks=(TASK,)))
    assert len(node_actions(swarm_host)) == 2  # nothing changed, nothing recorded

    services.record_cluster(swarm_host, state_of(MANAGER, NODE))  # down, drained
    assert node_actions(swarm_host)[2:] == ["host.node.down", "host.node.availability"]

    services.record_cluster(swarm_host, state_of(MANAGER))  # the manager forgot it
    row.refresh_from_db()
    assert row.gone and row.shown_state == "gone" and row.tasks == []
    assert node_actions(swarm_host)[-1] == "host.node.gone"
    assert Event.objects.filter(action="host.node.gone").get().outcome == Event.Outcome.FAILURE

    services.record_cluster(swarm_host, state_of(MANAGER, ready))  # it rejoined, same id
    row.refresh_from_db()
    assert not row.gone and row.state == "ready"
    assert node_actions(swarm_host)[-3:] == [
        "host.node.join",
        "host.node.ready",
        "host.node.availability",
    ]


def test_availability_input_is_checked_before_any_engine_call(swarm_host, superuser):
    SwarmNode.objects.create(
        host=swarm_host, node_id="n1", hostname="w", role="worker", availability="active",
        state="ready",
    )  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        services.set_node_availability(
            actor=superuser, host=swarm_host, node_id="n1", availability="off"
        )
    assert "availability" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.set_node_availability(
            actor=superuser, host=swarm_host, node_id="nope", availability="drain"
        )
    assert "node" in caught.value.message_dict


# --- a node's own engine endpoint (the real engines: tests/swarm/test_swarm_tasks.py) -------


def test_only_the_task_node_engine_is_its_identity():
    swarm = {"LocalNodeState": "active", "NodeID": "abc123"}
    assert engine_identity_problem({"Swarm": swarm}, "abc123") == ""
    assert "another node's engine (node id xyz" in engine_identity_problem(
        {"Swarm": {**swarm, "NodeID": "xyz"}}, "abc123"
    )
    for info in ({}, {"Swarm": {"LocalNodeState": "inactive", "NodeID": ""}}):
        assert engine_identity_problem(info, "abc123") == "an engine outside the swarm"


OWNER = {
    "io.berth.managed": "true",
    "io.berth.installation": "test-installation",
    "io.berth.tenant-id": "7",
    "io.berth.stack-id": "3",
}


@pytest.fixture
def owned_task(settings):
    settings.BERTH_INSTALLATION_ID = "test-installation"
    spec = {"ContainerSpec": {"Labels": {**OWNER, "not-berth": "x"}}}
    return {**TASK, "Spec": spec}


def container_labelled(**labels: str) -> dict:
    swarm = {"com.docker.swarm.task.id": "t1", "com.docker.swarm.node.id": "abc123"}
    return {"Config": {"Labels": {**OWNER, **swarm, **labels}}}


def test_the_container_must_carry_the_task_and_its_owner_labels(owned_task):
    assert task_container_problem(owned_task, container_labelled()) == ""
    wrong = {
        "com.docker.swarm.task.id": "another task",
        "com.docker.swarm.node.id": "another node",
        "io.berth.tenant-id": "not the task's (its tenant-id label is 'other', not '7')",
        "io.berth.installation": "another Berth installation",
    }
    for label, words in wrong.items():
        problem = task_container_problem(owned_task, container_labelled(**{label: "other"}))
        assert words in problem, (label, problem)
    assert "not created by Berth" in task_container_problem(
        owned_task, container_labelled(**{"io.berth.managed": "false"})
    )


@pytest.fixture
def worker(swarm_host) -> SwarmNode:
    return SwarmNode.objects.create(
        host=swarm_host, node_id="n1", hostname="w", role="worker", availability="active",
        state="ready",
    )  # fmt: skip


def test_node_engine_input_is_checked_as_a_host_endpoint_before_any_engine_call(
    swarm_host, worker, superuser, owner
):
    set_engine = services.set_node_engine
    cases = [
        ({"endpoint": "ftp://x"}, "endpoint"),
        ({"endpoint": "tcp://x:99999"}, "endpoint"),
        ({"endpoint": "tcp://10.0.0.9:2376", "tls_client_cert": "junk"}, "tls_ca_cert"),
        ({"endpoint": "unix:///run/w.sock", "tls_client_key": "junk"}, "tls_client_key"),
        ({"endpoint": "", "tls_ca_cert": "junk"}, "tls_ca_cert"),
        ({"endpoint": "unix:///run/w.sock", "colour": "red"}, "colour"),
    ]
    for fields, field in cases:
        with pytest.raises(ValidationError) as caught:
            set_engine(actor=superuser, host=swarm_host, node_id="n1", **fields)
        assert field in caught.value.message_dict, (fields, caught.value.message_dict)
    with pytest.raises(ValidationError) as caught:
        set_engine(actor=superuser, host=swarm_host, node_id="gone", endpoint="unix:///x.sock")
    assert "node" in caught.value.message_dict
    engine_host = services.register_host(actor=None, name="one", endpoint="tcp://10.0.0.8:2376")
    with pytest.raises(ValidationError) as caught:
        set_engine(actor=superuser, host=engine_host, node_id="n1", endpoint="unix:///x.sock")
    assert "host" in caught.value.message_dict
    with pytest.raises(PermissionDenied):
        set_engine(actor=owner, host=swarm_host, node_id="n1", endpoint="unix:///x.sock")
    worker.refresh_from_db()
    assert worker.engine_endpoint == "" and not worker.reaches_engine


def test_a_node_engine_that_does_not_answer_is_refused_and_the_heartbeat_keeps_it(
    swarm_host, worker, superuser, tmp_path
):
    missing = f"unix://{tmp_path}/nothing.sock"
    with pytest.raises(ValidationError, match="did not answer") as caught:
        services.set_node_engine(actor=superuser, host=swarm_host, node_id="n1", endpoint=missing)
    assert list(caught.value.message_dict) == ["endpoint"]
    # set behind the check (as an engine that later dies): the heartbeat's reading of the
    # nodes keeps the endpoint, and its check marks it failing
    SwarmNode.objects.filter(pk=worker.pk).update(
        engine_endpoint=missing, engine_verified_at=timezone.now()
    )
    worker.refresh_from_db()
    assert worker.reaches_engine
    node = {**NODE, "ID": "n1", "Description": {"Hostname": "w"}}
    services.record_cluster(swarm_host, state_of(MANAGER, node))
    services.record_node_engines(swarm_host, services._check_node_engines(swarm_host))
    worker.refresh_from_db()
    assert worker.engine_endpoint == missing and not worker.reaches_engine
    assert "did not answer" in worker.engine_error
    assert "host.node.engine_lost" in node_actions(swarm_host)


def test_an_unknown_kind_is_a_field_error(db):
    with pytest.raises(ValidationError) as caught:
        services.register_host(actor=None, name="k", endpoint="tcp://k:2376", kind="k8s")
    assert "kind" in caught.value.message_dict


# --- pages and API ---------------------------------------------------------------------------


def test_api_registers_a_swarm_and_lists_its_nodes(admin_client, swarm_host):
    response = admin_client.post(
        reverse("api:host-list"),
        {"name": "swarm-2", "endpoint": "tcp://10.0.0.9:2376", "kind": "swarm"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "swarm"
    services.record_cluster(swarm_host, state_of(MANAGER, NODE, tasks=(TASK,)))
    nodes = admin_client.get(reverse("api:host-nodes", args=[swarm_host.pk])).json()
    assert [(n["hostname"], n["role"], n["state"]) for n in nodes] == [
        ("node-1", "manager", "ready"),
        ("node-2", "worker", "down"),
    ]
    assert nodes[1]["tasks"][0]["service"] == "web"
    changed = admin_client.patch(
        reverse("api:host-detail", args=[swarm_host.pk]),
        {"kind": "engine"},
        content_type="application/json",
    )
    assert changed.status_code == 400 or Host.objects.get(pk=swarm_host.pk).is_swarm


def test_api_refuses_bad_availability_and_engine_hosts_with_a_field(admin_client, swarm_host):
    services.record_cluster(swarm_host, state_of(MANAGER))
    url = reverse("api:host-node-availability", args=[swarm_host.pk, "m1"])
    response = admin_client.post(url, {"availability": "sleep"}, content_type="application/json")
    assert response.status_code == 400 and "availability" in response.json()
    response = admin_client.post(url, {}, content_type="application/json")
    assert response.status_code == 400 and "availability" in response.json()
    engine = services.register_host(actor=None, name="one", endpoint="tcp://10.0.0.7:2376")
    response = admin_client.get(reverse("api:host-nodes", args=[engine.pk]))
    assert response.status_code == 400 and "kind" in response.json()


def test_api_reports_an_unreachable_manager_as_503(admin_client, swarm_host):
    services.record_cluster(swarm_host, state_of(MANAGER))
    Host.objects.filter(pk=swarm_host.pk).update(endpoint="unix:///nonexistent/docker.sock")
    url = reverse("api:host-node-availability", args=[swarm_host.pk, "m1"])
    response = admin_client.post(url, {"availability": "drain"}, content_type="application/json")
    assert response.status_code == 503
    assert "Swarm did not change the node" in response.json()["detail"]


def test_page_shows_nodes_and_turns_an_engine_failure_into_a_message(admin_client, swarm_host):
    services.record_cluster(swarm_host, state_of(MANAGER, NODE, tasks=(TASK,)))
    page = admin_client.get(reverse("hosts:detail", args=[swarm_host.pk])).content.decode()
    assert "Swarm nodes" in page and "node-2" in page and "zone=eu" in page and "web.2" in page
    Host.objects.filter(pk=swarm_host.pk).update(endpoint="unix:///nonexistent/docker.sock")
    url = reverse("hosts:node_availability", args=[swarm_host.pk, "abc123"])
    response = admin_client.post(url, {"availability": "active"}, follow=True)
    assert response.status_code == 200
    assert "Swarm did not change the node" in response.content.decode()


def test_node_routes_are_404_for_non_admins(owner_client, swarm_host):
    url = reverse("hosts:node_availability", args=[swarm_host.pk, "m1"])
    assert owner_client.post(url, {"availability": "drain"}).status_code == 404


def test_add_page_registers_a_swarm_cluster(admin_client):
    page = admin_client.get(reverse("hosts:create")).content.decode()
    assert 'name="kind"' in page and "Swarm cluster" in page
    response = admin_client.post(
        reverse("hosts:create"),
        {"name": "cluster-9", "kind": "swarm", "endpoint": "unix:///nonexistent/swarm.sock"},
    )
    assert response.status_code == 302
    host = Host.objects.get(name="cluster-9")
    assert host.is_swarm and host.state == Host.State.UNREACHABLE  # no manager there


def test_the_admin_site_never_shows_a_node_client_key(admin_client, worker):
    SwarmNode.objects.filter(pk=worker.pk).update(
        engine_endpoint="tcp://10.0.0.9:2376", engine_tls_client_key="KEY-MATERIAL-SECRET"
    )
    page = admin_client.get(reverse("admin:hosts_swarmnode_change", args=[worker.pk]))
    assert page.status_code == 200
    assert "tcp://10.0.0.9:2376" in page.content.decode()
    assert "KEY-MATERIAL-SECRET" not in page.content.decode()


def test_a_node_engine_tls_material_is_checked_and_kept_in_the_node_folder(
    swarm_host, worker, superuser, settings, tmp_path
):
    settings.BERTH_STATE_DIR = tmp_path
    ca = ThrowawayCA()
    client, stranger = ca.client(), ca.client("someone-else")
    tls = {"tls_ca_cert": ca.cert, "tls_client_cert": client.cert}
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ValidationError) as caught:
        services.set_node_engine(
            actor=superuser, host=swarm_host, node_id="n1", endpoint=endpoint,
            tls_client_key=stranger.key, **tls,
        )  # fmt: skip
    assert "does not belong" in caught.value.message_dict["tls_client_key"][0]
    # complete and matching, then asked: nobody listens there; the probe's temporary
    # folder is gone again
    with pytest.raises(ValidationError, match="did not answer"):
        services.set_node_engine(
            actor=superuser, host=swarm_host, node_id="n1", endpoint=endpoint,
            tls_client_key=client.key, **tls,
        )  # fmt: skip
    assert not list(tls_root().glob("unsaved-*"))
    # a saved node's material: its own 0600 files under tls/node-<id>/, gone with it
    node = NodeEngine("n1", "w", endpoint, ca.cert, client.cert, client.key, row_id=worker.pk)
    engine = open_node_engine(node)
    folder = tls_root() / f"node-{worker.pk}"
    assert engine._tls is not None and engine._tls.folder == folder
    assert (folder / "key.pem").read_text().strip() == client.key.strip()
    assert oct((folder / "key.pem").stat().st_mode & 0o777) == "0o600"
    engine.close()
    forget_tls_files(worker.pk, prefix="node-")
    assert not folder.exists()


# --- what the log and metrics collectors read of a swarm (real swarm: test_swarm_tasks.py) ---


def test_a_managed_task_is_named_as_berth_names_its_row(owned_task):
    labels = {**OWNER, "io.berth.service": "web"}
    doc = {**owned_task, "Spec": {"ContainerSpec": {"Labels": {**labels, "other": "x"}}}}
    doc["Status"] = {"State": "running", "ContainerStatus": {"ContainerID": "c1"}}
    task = parse_managed_task(doc)
    assert (task.task_id, task.node_id, task.container_id, task.name) == (
        "t1", "abc123", "c1", "web.2"
    )  # fmt: skip
    assert task.labels == labels  # only Berth's
    canary = {**labels, "io.berth.canary": "5"}
    doc["Spec"] = {"ContainerSpec": {"Labels": canary}}
    assert parse_managed_task(doc).name == "web.canary.2"


@pytest.mark.parametrize(
    ("task_state", "as_container", "ended"),
    [
        ("running", "running", ""),
        ("starting", "created", ""),  # about to write: never skipped
        ("complete", "exited", "task"),
        ("failed", "exited", "task"),
        ("shutdown", "exited", "task"),
    ],
)
def test_an_ended_task_is_read_to_its_end_once(owned_task, task_state, as_container, ended):
    """A task never runs again once it ended: the log collector reads it to the end once
    and then leaves it (no inspect call: the manager's list says it)."""
    from apps.hosts.engine.swarm_logs import SwarmTaskLogs, _as_container
    from apps.logs.collector import ended_run

    task = parse_managed_task({**owned_task, "Status": {"State": task_state}})
    container = _as_container(task)
    assert container.state == as_container
    assert ended_run(SwarmTaskLogs.__new__(SwarmTaskLogs), container) == ended


def test_only_containers_carrying_their_task_node_and_owner_are_taken(owned_task):
    task = parse_managed_task(owned_task)
    swarm = {"com.docker.swarm.task.id": "t1", "com.docker.swarm.node.id": "abc123"}

    def listed(cid: str, **labels: str) -> ManagedContainer:
        return ManagedContainer(cid, cid, "", "running", "", {**OWNER, **swarm, **labels})

    good = listed("c1")
    forged = listed("c2", **{"io.berth.tenant-id": "8"})
    elsewhere = listed("c3", **{"com.docker.swarm.node.id": "other"})
    unknown = listed("c4", **{"com.docker.swarm.task.id": "t9"})
    found, refused = node_task_containers([good, forged, elsewhere, unknown], [task], "abc123")
    assert found == {"t1": good}
    assert [r.split(":")[0] for r in refused] == ["c2", "c3"]
    assert "tenant-id" in refused[0] and "another node" in refused[1]
    # listed on another node's engine, even with every label right: refused
    assert node_task_containers([good], [task], "xyz")[0] == {}


def test_the_manager_path_applies_until_and_raises_its_errors():
    lines = [
        LogLine("stdout", "2026-12-06T21:00:00.000000001Z", "a"),
        LogLine("stdout", "2026-12-06T21:00:00.5Z", "b"),
        LogLine("stdout", "", "b's piece"),
        LogLine("stderr", "2026-12-06T21:00:00.2Z", "late but in"),
        LogLine("stdout", "", "its piece"),
    ]

    class Reader:
        tty = False

        def batches(self, opened=None):
            yield lines

        def runs(self, opened=None):  # the same lines, raw, one run per line
            yield [
                (line.stream, f"{line.ts} {line.text}".strip().encode() + b"\n") for line in lines
            ]

        def close(self):
            pass

    base = rfc3339_ns("2026-12-06T21:00:00Z")
    until = f"{base // 10**9}.{(base % 10**9) + 200_000_000:09d}"
    kept = list(UntilReader(Reader(), until).batches())
    assert [line.text for batch in kept for line in batch] == ["a", "late but in", "its piece"]
    runs = [run for read in UntilReader(Reader(), until).runs() for _, run in read]
    assert runs == [
        b"2026-12-06T21:00:00.000000001Z a\n",
        b"2026-12-06T21:00:00.2Z late but in\n",
        b"its piece\n",
    ]
    assert rfc3339_ns("2026-12-06T21:00:00.5Z") == base + 500_000_000
    demux = _StrictDemultiplexer()
    frame = struct.pack(">BxxxL", 1, 4) + b"x 1\n"
    assert demux.feed(frame) == [("stdout", b"x 1\n")]
    error = b"Error grabbing logs: node n1 is not available\n"
    with pytest.raises(EngineError, match="could not read the task's log: Error grabbing"):
        demux.feed(struct.pack(">BxxxL", 3, len(error)) + error)
    # The live view through the manager names the frame as the engine's, never stdout.
    live = TaskLogStream.__new__(TaskLogStream)._demultiplexer()
    assert live.feed(frame + struct.pack(">BxxxL", 3, len(error)) + error) == [
        ("stdout", b"x 1\n"),
        ("engine", error),
    ]


def test_why_a_node_is_not_measured(worker):
    assert worker.engine_gap == "node w has no engine endpoint"
    worker.engine_endpoint = "tcp://10.0.0.7:2376"
    worker.engine_error = "This endpoint reaches another node's engine"
    assert "failed its last check: This endpoint reaches another" in worker.engine_gap
    worker.engine_verified_at = timezone.now()
    assert worker.engine_gap == ""
    worker.state = "down"
    assert worker.engine_gap == "node w is down"
    worker.state, worker.is_endpoint, worker.engine_endpoint = "ready", True, ""
    assert worker.engine_gap == ""
