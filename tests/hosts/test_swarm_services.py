"""A Berth service as a Swarm service body, without an engine: `service_spec` maps a
`SwarmServiceRequest` to the Engine API's ServiceSpec (docker.types), and the parsing
of the manager's service documents. The real swarm runs it in tests/swarm/."""

from __future__ import annotations

import pytest

from apps.hosts.engine import (
    SPEC_HASH_LABEL,
    EngineError,
    HealthcheckRequest,
    RolloutConfig,
    ServiceNetwork,
    ServicePort,
    SwarmServiceRequest,
    managed_labels,
    service_spec,
)
from apps.hosts.engine.swarm import parse_service, parse_timestamp
from apps.hosts.engine.swarm_services import registry_auth_header

S = 1_000_000_000


def full_request(**changes) -> SwarmServiceRequest:
    values = dict(
        name="t1-shop-web",
        image="127.0.0.1:5000/library/web:1.0",
        labels=managed_labels({"stack": "shop", "service": "web"}),
        replicas=3,
        command=("serve", "--port", "8080"),
        entrypoint=("/app/start.sh",),
        env={"A": "1", "UNSET": None},
        user="1000:1000",
        working_dir="/www",
        nano_cpus=500_000_000,
        memory=64 << 20,
        cpu_reservation=100_000_000,
        memory_reservation=16 << 20,
        pids_limit=256,
        restart_condition="on-failure",
        restart_delay=2,
        restart_max_attempts=3,
        restart_window=30,
        healthcheck=HealthcheckRequest(
            test=("CMD", "wget", "-q", "http://127.0.0.1:8080/health"),
            interval=3,
            timeout=2,
            start_period=5,
            retries=3,
        ),
        constraints=("node.role==worker", "node.labels.tenant==t1"),
        preferences=("node.labels.zone",),
        networks=(ServiceNetwork("t1-shop", ("web", "www")), ServiceNetwork("t1-front")),
        ports=(ServicePort(8080, 18080), ServicePort(53, None, "udp")),
        update=RolloutConfig(
            parallelism=2, delay=1.5, order="start-first", failure_action="rollback", monitor=5
        ),
        rollback=RolloutConfig(parallelism=0, order="stop-first", failure_action="pause"),
        stop_grace_period=0,
        registry_auth={"username": "u", "password": "p", "serveraddress": "127.0.0.1:5000"},
    )
    values.update(changes)
    return SwarmServiceRequest(**values)


def test_every_field_lands_where_the_engine_reads_it(settings):
    body = service_spec(full_request())
    assert body["Name"] == "t1-shop-web"
    assert body["Mode"] == {"replicated": {"Replicas": 3}}  # docker-py's case; Go reads any
    task = body["TaskTemplate"]
    spec = task["ContainerSpec"]
    assert spec["Image"] == "127.0.0.1:5000/library/web:1.0"
    # compose entrypoint -> Swarm's Command, compose command -> Swarm's Args
    assert spec["Command"] == ["/app/start.sh"]
    assert spec["Args"] == ["serve", "--port", "8080"]
    assert spec["Env"] == ["A=1", "UNSET"]
    assert (spec["User"], spec["Dir"]) == ("1000:1000", "/www")
    assert spec["StopGracePeriod"] == 0  # 0 s kills at once, not Docker's 10 s
    assert spec["Healthcheck"] == {
        "Test": ["CMD", "wget", "-q", "http://127.0.0.1:8080/health"],
        "Interval": 3 * S,
        "Timeout": 2 * S,
        "StartPeriod": 5 * S,
        "Retries": 3,
    }
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20, "Pids": 256},
        "Reservations": {"NanoCPUs": 100_000_000, "MemoryBytes": 16 << 20},
    }
    assert task["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": 2 * S,
        "MaxAttempts": 3,
        "Window": 30 * S,
    }
    assert task["Placement"] == {
        "Constraints": ["node.role==worker", "node.labels.tenant==t1"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
    }
    assert task["Networks"] == [
        {"Target": "t1-shop", "Aliases": ["web", "www"]},
        {"Target": "t1-front"},
    ]
    assert task["LogDriver"] == {
        "Name": "json-file",
        "Options": {"max-size": "10m", "max-file": "3"},
    }
    assert body["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host", "PublishedPort": 18080},
            {"Protocol": "udp", "TargetPort": 53, "PublishMode": "host"},
        ],
    }
    assert body["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": 1_500_000_000,
        "FailureAction": "rollback",
        "Monitor": 5 * S,
        "Order": "start-first",
    }
    assert body["RollbackConfig"] == {
        "Parallelism": 0,
        "Delay": 0,
        "FailureAction": "pause",
        "Order": "stop-first",
    }
    labels = body["Labels"]
    assert labels["io.berth.installation"] == settings.BERTH_INSTALLATION_ID
    assert labels["io.berth.stack"] == "shop" and len(labels[SPEC_HASH_LABEL]) == 32
    # the containers are recognisable as Berth's on any node
    assert spec["Labels"]["io.berth.installation"] == settings.BERTH_INSTALLATION_ID


def test_a_minimal_request_leaves_the_engine_its_defaults():
    body = service_spec(
        SwarmServiceRequest(name="x", image="busybox:1", labels=managed_labels({"stack": "s"}))
    )
    task = body["TaskTemplate"]
    assert set(task) == {"ContainerSpec", "RestartPolicy", "LogDriver"}
    assert set(task["ContainerSpec"]) == {"Image", "Labels"}
    assert body["EndpointSpec"] == {"Mode": "dnsrr"}  # no IPVS here: never the VIP
    assert "UpdateConfig" not in body and "RollbackConfig" not in body


def test_the_spec_hash_follows_the_spec_and_nothing_else():
    first = service_spec(full_request())["Labels"][SPEC_HASH_LABEL]
    assert service_spec(full_request())["Labels"][SPEC_HASH_LABEL] == first
    # credentials are not part of the spec (a new token must not roll every task)
    other_auth = full_request(registry_auth={"username": "v", "password": "q"})
    assert service_spec(other_auth)["Labels"][SPEC_HASH_LABEL] == first
    assert "password" not in repr(full_request())
    for change in (
        {"image": "127.0.0.1:5000/library/web:1.1"},
        {"env": {"A": "2"}},
        {"replicas": 1},
        {"update": RolloutConfig(order="stop-first")},
        {"constraints": ()},
    ):
        assert service_spec(full_request(**change))["Labels"][SPEC_HASH_LABEL] != first, change
    # a stale hash label in the request is replaced, not hashed
    stale = full_request(labels={**managed_labels(), SPEC_HASH_LABEL: "old"})
    again = full_request(labels=managed_labels())
    assert (
        service_spec(stale)["Labels"][SPEC_HASH_LABEL]
        == service_spec(again)["Labels"][SPEC_HASH_LABEL]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": {"io.berth.stack": "s"}}, "no owner labels"),
        ({"restart_condition": "always"}, "restart 'always'"),
        ({"update": RolloutConfig(order="sideways")}, "update order"),
        ({"rollback": RolloutConfig(failure_action="panic")}, "failure action"),
        ({"ports": (ServicePort(80, 80, "icmp"),)}, "protocol"),
        ({"replicas": -1}, "replicas"),
    ],
)
def test_bad_requests_are_refused_before_any_call(change, message):
    with pytest.raises(EngineError, match=message) as err:
        service_spec(full_request(**change))
    assert not err.value.retryable


def test_registry_auth_header_is_urlsafe_base64_json():
    import base64
    import json

    header = registry_auth_header({"username": "u", "password": "p?>"})
    assert json.loads(base64.urlsafe_b64decode(header)) == {"username": "u", "password": "p?>"}
    assert registry_auth_header(None) is None


def test_a_service_document_is_read_with_its_counts_and_update_state():
    doc = {
        "ID": "svc1",
        "Version": {"Index": 42},
        "Spec": {
            "Name": "t1-shop-web",
            "Labels": {SPEC_HASH_LABEL: "abc", "io.berth.stack": "shop"},
            "Mode": {"Replicated": {"Replicas": 3}},
            "TaskTemplate": {"ContainerSpec": {"Image": "reg/web:1.1@sha256:ff"}},
        },
        "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3},
        "UpdateStatus": {"State": "updating", "Message": "update in progress"},
        "CreatedAt": "2026-01-02T03:04:05.123456789Z",
    }
    info = parse_service(doc)
    assert (info.service_id, info.name, info.spec_hash, info.image) == (
        "svc1",
        "t1-shop-web",
        "abc",
        "reg/web:1.1",
    )
    assert (info.replicas_desired, info.replicas_running, info.version) == (3, 2, 42)
    assert (info.update_state, info.update_message) == ("updating", "update in progress")
    assert info.created_at == pytest.approx(1767323045.123456)
    bare = parse_service({"ID": "s", "Spec": {"Name": "n"}})
    assert (bare.replicas_desired, bare.replicas_running, bare.update_state) == (0, 0, "")
    assert bare.created_at == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.123456789Z", 1767323045.123456),  # nanoseconds, as Swarm writes
        ("2026-01-02T03:04:05Z", 1767323045.0),
        ("2026-01-02T03:04:05.5+01:00", 1767319445.5),
        ("2026-01-02T03:04:05-02:00", 1767330245.0),
        ("", 0.0),
        (None, 0.0),
        ("yesterday", 0.0),
    ],
)
def test_engine_timestamps_are_read_as_unix_time(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected)
