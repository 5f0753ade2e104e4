"""Namespaces, devices and kernel settings reach the final request, never silently dropped:
passed through where an admin allowed the rule for the environment, refused on the final
HostConfig where not (pure: no engine)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from apps.compose import ComposeError
from apps.deployments.containers import container_request, desired_stack
from apps.deployments.spec import build_spec, project_from_spec
from apps.hosts.engine import ContainerRequest, EngineError, HostPolicy, checked_config
from apps.hosts.engine.containers import container_config, device_mapping

COMPOSE = """
services:
  app:
    image: img
    pid: host
    ipc: host
    uts: host
    userns_mode: host
    devices: ["/dev/fuse", "/dev/null:/dev/nothing:r", "/dev/zero:rw"]
    device_cgroup_rules: ["c 10:229 rwm"]
    sysctls: {net.ipv4.ip_unprivileged_port_start: "80"}
    cgroup_parent: berth.slice
  hostnet:
    image: img
    network_mode: host
  sidecar:
    image: img
    network_mode: "service:app"
    pid: "service:app"
"""
EXCEPTIONS = [
    "pid",
    "ipc",
    "uts",
    "userns_mode",
    "devices",
    "device_cgroup_rules",
    "sysctls",
    "cgroup_parent",
    "network_mode",
]


def environment(exceptions=()):
    return SimpleNamespace(
        slug="dev",
        publish_interface="127.0.0.1",
        policy_exceptions=list(exceptions),
        default_memory_limit=64 << 20,
        default_pids_limit=128,
        log_max_size="10m",
        log_max_files=3,
    )


def stack_on(env):
    return SimpleNamespace(
        pk=7,
        name="ns",
        tenant_id=3,
        environment_id=5,
        tenant=SimpleNamespace(slug="acme"),
        environment=env,
        desired_state="running",
    )


SIBLINGS = {"app": "0123456789ab", "hostnet": "ba9876543210"}


def request_for(service: str, env, spec=None, siblings=SIBLINGS) -> ContainerRequest:
    spec = spec or build_spec(COMPOSE, {}, env)
    stack = stack_on(env)
    return container_request(
        stack, spec, project_from_spec(spec), service, 1, f"c-{service}", 1, siblings=siblings
    )


def test_allowed_exceptions_reach_the_host_config():
    env = environment(EXCEPTIONS)
    hc = checked_config(request_for("app", env))["HostConfig"]
    assert (hc["PidMode"], hc["IpcMode"], hc["UTSMode"], hc["UsernsMode"]) == ("host",) * 4
    assert hc["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/nothing", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "rw"},
    ]
    assert hc["DeviceCgroupRules"] == ["c 10:229 rwm"]
    assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80"}
    assert hc["CgroupParent"] == "berth.slice"
    assert "no-new-privileges:true" in hc["SecurityOpt"]  # hardening still applies


def test_host_network_joins_no_berth_network():
    env = environment(EXCEPTIONS)
    config = checked_config(request_for("hostnet", env))
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert "NetworkingConfig" not in config


def test_service_modes_join_the_siblings_first_replica_without_exception():
    env = environment()
    spec = build_spec(
        "services:\n  app: {image: img}\n"
        "  sidecar: {image: img, network_mode: 'service:app', pid: 'service:app'}\n",
        {},
        env,
    )
    # `siblings`: the stack's own containers, listed by the reconciler (engine ids).
    config = checked_config(request_for("sidecar", env, spec))
    assert config["HostConfig"]["NetworkMode"] == "container:0123456789ab"
    assert config["HostConfig"]["PidMode"] == "container:0123456789ab"
    assert "NetworkingConfig" not in config
    # ... and the planner starts the sibling first.
    desired = desired_stack(stack_on(env), spec, project_from_spec(spec))
    assert desired.services["sidecar"].depends_on == {"app": "service_started"}


def test_service_modes_never_resolve_outside_the_stack():
    """No sibling container listed for `app`: the engine is never asked to resolve a
    name, which could be any container's on the engine."""
    env = environment(["network_mode"])
    spec = build_spec(
        "services:\n  app: {image: img}\n"
        "  sidecar: {image: img, network_mode: 'service:app'}\n"
        "  other: {image: img, network_mode: 'container:acme-dev-db-1'}\n",
        {},
        env,
    )
    with pytest.raises(EngineError, match="not a running container of this stack"):
        request_for("sidecar", env, spec, siblings={})
    with pytest.raises(EngineError, match="'acme-dev-db-1', which is not a running container"):
        request_for("other", env, spec)


@pytest.mark.parametrize(
    "service, rules",
    [
        ("app", {"pid", "ipc", "uts", "userns_mode", "devices", "sysctls", "cgroup_parent"}),
        ("hostnet", {"network_mode"}),
    ],
)
def test_without_the_exception_the_final_request_is_refused(service, rules):
    # The spec was built while the admin allowed the rules; they were withdrawn since.
    spec = build_spec(COMPOSE, {}, environment(EXCEPTIONS))
    with pytest.raises(EngineError) as caught:
        checked_config(request_for(service, environment(), spec))
    assert not caught.value.retryable
    for rule in rules:
        assert f"(rule: {rule})" in caught.value.message


def test_the_tenant_policy_refuses_them_first():
    with pytest.raises(ComposeError) as caught:
        build_spec(COMPOSE, {}, environment())
    assert "sysctls" in str(caught.value.problems)


def test_admin_deploys_carry_the_rules_they_used():
    spec = build_spec(COMPOSE, {}, environment(), allow_all=True)
    assert set(spec["admin_exceptions"]) >= {"pid", "sysctls", "network_mode", "devices"}
    hc = checked_config(request_for("app", environment(), spec))["HostConfig"]
    assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80"}
    assert "admin_exceptions" not in build_spec("services: {a: {image: i}}", {}, environment())


def test_request_builder_passes_every_field():
    base = ContainerRequest(name="x", image="i", network="n", memory=1 << 20, pids_limit=10)
    full = dataclasses.replace(
        base,
        network_mode="none",
        ipc_mode="shareable",
        sysctls={"net.core.somaxconn": 1024},
        volumes_from=("other:ro",),
        policy=HostPolicy(allowed_exceptions=frozenset({"volumes_from", "sysctls"})),
    )
    config = container_config(full)
    hc = config["HostConfig"]
    assert hc["NetworkMode"] == "none" and hc["IpcMode"] == "shareable"
    assert hc["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert hc["VolumesFrom"] == ["other:ro"]
    assert checked_config(full)
    plain = container_config(base)["HostConfig"]
    for key in ("PidMode", "Devices", "Sysctls", "VolumesFrom", "CgroupParent", "UsernsMode"):
        assert key not in plain


@pytest.mark.parametrize("device", ["", "/dev/a:/dev/b:rwm:x", "/dev/a:/dev/b:rwx"])
def test_malformed_devices_are_refused_readably(device):
    with pytest.raises(EngineError) as caught:
        device_mapping(device)
    assert "device" in caught.value.message.lower() and not caught.value.retryable
