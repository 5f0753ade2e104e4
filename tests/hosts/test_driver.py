"""The driver's container requests: policy and hardening checked on the final HostConfig
(pure), and the new operations against the real engine."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings

from apps.hosts.engine import (
    ContainerRequest,
    EngineError,
    HealthcheckRequest,
    HostPolicy,
    Mount,
    PortBinding,
    checked_config,
    get_engine,
    host_config,
)
from tests.fixtures.engine import docker, inspect

BASE = ContainerRequest(
    name="t-web-1",
    image="img",
    network="berth-t-dev",
    memory=64 << 20,
    pids_limit=64,
    mounts=(Mount(type="volume", source="berth-1-data", target="/data"),),
    ports=(PortBinding(container_port=80, host_ip="127.0.0.1", host_port=None),),
    policy=HostPolicy(allowed_volumes=frozenset({"berth-1-data"})),
)


def refusal(**changes) -> str:
    with pytest.raises(EngineError) as caught:
        checked_config(dataclasses.replace(BASE, **changes))
    assert not caught.value.retryable
    return caught.value.message


def test_a_plain_request_passes_with_hardening():
    hc = checked_config(BASE)["HostConfig"]
    assert hc["SecurityOpt"] == ["no-new-privileges:true"]
    assert hc["Memory"] == 64 << 20 and hc["PidsLimit"] == 64
    assert hc["LogConfig"]["Config"]["max-size"] == "10m"
    assert hc["NetworkMode"] == "berth-t-dev"


def test_privileged_host_config_is_refused_unless_allowed():
    assert "privileged" in refusal(privileged=True)
    assert host_config(dataclasses.replace(BASE, privileged=True))["Privileged"] is True
    allowed = HostPolicy(
        allowed_exceptions=frozenset({"privileged"}),
        allowed_volumes=frozenset({"berth-1-data"}),
    )
    assert checked_config(dataclasses.replace(BASE, privileged=True, policy=allowed))


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"cap_add": ("SYS_ADMIN",)}, "cap_add"),
        ({"mounts": (Mount(type="bind", source="/var/run/docker.sock", target="/s"),)}, "docker"),
        ({"mounts": (Mount(type="volume", source="berth-2-other", target="/x"),)}, "volume"),
        ({"ports": (PortBinding(container_port=80, host_ip="0.0.0.0"),)}, "port"),
        ({"security_opt": ("seccomp=unconfined",)}, "security"),
        ({"memory": 0}, "memory limit"),
        ({"pids_limit": 0}, "process-count"),
    ],
)
def test_unsafe_or_unhardened_requests_are_refused(changes, rule):
    assert rule in refusal(**changes)


def test_healthcheck_durations_are_nanoseconds():
    request = dataclasses.replace(
        BASE, healthcheck=HealthcheckRequest(test=("CMD", "true"), interval=1.5, retries=2)
    )
    check = checked_config(request)["Healthcheck"]
    assert check == {"Test": ["CMD", "true"], "Interval": 1_500_000_000, "Retries": 2}


@pytest.fixture
def engine():
    host = SimpleNamespace(
        pk=None,
        kind="engine",
        endpoint=settings.BERTH_DOCKER_HOST,
        tls_client_cert="",
        tls_verify=True,
    )
    with get_engine(host) as eng:
        yield eng


@pytest.mark.engine
def test_refused_request_never_reaches_the_engine(engine):
    with pytest.raises(EngineError, match="privileged"):
        engine.create_container(dataclasses.replace(BASE, privileged=True))
    assert engine.api_calls == 0


@pytest.mark.engine
def test_networks_and_volumes_are_idempotent(engine):
    name = f"berth-test-{uuid.uuid4().hex[:8]}"
    labels = {"io.berth.test": "1"}
    try:
        first = engine.ensure_network(name, labels)
        assert engine.ensure_network(name, labels) == first
        engine.ensure_volume(name, labels)
        engine.ensure_volume(name, labels)
        assert docker("volume", "inspect", "-f", "{{.Labels}}", name).count("io.berth.managed")
    finally:
        engine.remove_network(name, owner=labels)
        engine.remove_network(name, owner=labels)
        engine.remove_volume(name, owner=labels)
        engine.remove_volume(name, owner=labels)
    assert docker("network", "ls", "-q", "--filter", f"name=^{name}$") == ""


@pytest.mark.engine
def test_pull_of_a_missing_image_is_a_clear_error(engine):
    assert not engine.image_present("berth-test-missing/nothing:1")
    with pytest.raises(EngineError) as caught:
        engine.pull("127.0.0.1:1/berth-test-missing:1")
    assert caught.value.message == (
        "Cannot pull image 127.0.0.1:1/berth-test-missing:1: "
        "the registry at 127.0.0.1:1 cannot be reached (connection refused)"
    )


@pytest.mark.engine
def test_container_lifecycle(engine, image):
    name = f"berth-test-{uuid.uuid4().hex[:8]}"
    engine.ensure_network(name, {"io.berth.test": "1"})
    request = dataclasses.replace(
        BASE,
        name=name,
        image=image,
        network=name,
        aliases=("web",),
        mounts=(Mount(type="tmpfs", target="/scratch", tmpfs_size=1 << 20),),
        command=("sh", "-c", "exec httpd -f -p 80 -h /www"),
        labels={"io.berth.managed": "true", "io.berth.test": "1"},
        healthcheck=HealthcheckRequest(test=("CMD", "true"), interval=1, retries=1),
        stop_timeout=1,
        policy=HostPolicy(),
    )
    try:
        cid = engine.create_container(request)
        assert engine.inspect_container(cid).state == "created"
        engine.start(cid)
        engine.restart(cid, timeout=1)
        status = engine.inspect_container(cid)
        assert status.state == "running" and status.name == name
        assert status.ports[0]["host_ip"] == "127.0.0.1" and status.ports[0]["host_port"] > 0
        assert inspect(cid)["NetworkSettings"]["Networks"][name]["Aliases"][:1] == ["web"]
        engine.stop(cid, timeout=1)
        assert engine.inspect_container(cid).state == "exited"
        with pytest.raises(EngineError) as caught:
            engine.create_container(request)
        assert caught.value.status == 409
    finally:
        engine.remove(cid)
        engine.remove(cid)
        engine.remove_network(name, owner={"io.berth.test": "1"})
    with pytest.raises(EngineError) as caught:
        engine.inspect_container(cid)
    assert caught.value.not_found


@pytest.mark.parametrize("image", ["sha256:" + "ab" * 32, "ab" * 32, "0123456789ab", "55"])
def test_image_ids_are_refused_by_the_driver_itself(image):
    """The compose reader and the pull refuse ids first; the driver is the last line."""
    with pytest.raises(EngineError, match="is an image id"):
        checked_config(dataclasses.replace(BASE, image=image))
