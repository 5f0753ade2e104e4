"""build_spec / project_from_spec / service_hash: pure, no database (plain environment)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from apps.compose import ComposeError
from apps.deployments.spec import build_spec, project_from_spec, service_hash

COMPOSE = """
services:
  web:
    image: "berth-demo/web:${TAG:-1.0}"
    command: ["httpd", "-f"]
    environment: {GREETING: "${GREETING}"}
    ports: ["8080:80", {target: 81, published: 8081, host_ip: 127.0.0.1}]
    volumes: [{type: volume, source: data, target: /data}, {type: tmpfs, target: /tmp}]
    depends_on: {api: {condition: service_healthy}}
    healthcheck: {test: ["CMD", "true"], interval: 2s, retries: 3}
    deploy:
      replicas: 2
      resources: {limits: {memory: 64M, cpus: "0.5"}}
      update_config: {order: start-first}
  api:
    image: berth-demo/guestbook-api:1.0
volumes:
  data: {}
"""


def env(**overrides):
    fields = {
        "publish_interface": "127.0.0.1",
        "policy_exceptions": [],
        "default_memory_limit": 256 * 1024 * 1024,
        "default_pids_limit": 128,
        "log_max_size": "5m",
        "log_max_files": 2,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_spec_is_json_and_round_trips():
    spec = build_spec(COMPOSE, {"GREETING": "hi"}, env())
    assert json.loads(json.dumps(spec)) == spec
    assert spec["hardening"] == {
        "memory": 268435456,
        "pids": 128,
        "log_max_size": "5m",
        "log_max_files": 2,
    }
    project = project_from_spec(spec)
    web = project.services["web"]
    assert web.image == "berth-demo/web:1.0"
    assert web.environment == {"GREETING": "hi"}
    assert web.replicas == 2
    assert web.deploy.update_config.order == "start-first"
    assert web.depends_on["api"].condition == "service_healthy"
    assert web.healthcheck.test == ("CMD", "true")
    assert [p.host_ip for p in web.ports] == ["127.0.0.1", "127.0.0.1"]
    assert web.volumes[0].source == "data" and web.volumes[1].type == "tmpfs"
    assert project.volumes["data"].key == "data"
    assert build_spec(COMPOSE, {"GREETING": "hi"}, env())["project"] == spec["project"]


def test_policy_is_applied_with_the_environment_exceptions():
    privileged = "services:\n  web:\n    image: x\n    privileged: true\n"
    with pytest.raises(ComposeError) as caught:
        build_spec(privileged, {}, env())
    assert "privileged" in caught.value.messages[0]
    assert build_spec(privileged, {}, env(policy_exceptions=["privileged"]))
    assert build_spec(privileged, {}, env(), allow_all=True)


def test_ports_on_another_interface_are_refused():
    text = "services:\n  web:\n    image: x\n    ports: ['0.0.0.0:80:80']\n"
    with pytest.raises(ComposeError) as caught:
        build_spec(text, {}, env())
    assert "port" in caught.value.messages[0]


def test_required_variable_message():
    text = "services:\n  web:\n    image: '${IMG:?set the image}'\n"
    with pytest.raises(ComposeError) as caught:
        build_spec(text, {}, env())
    assert "set the image" in caught.value.messages[0]


def test_hash_ignores_scale_but_not_image_env_or_hardening():
    base = build_spec(COMPOSE, {"GREETING": "hi"}, env())
    scaled = json.loads(json.dumps(base))
    scaled["project"]["services"]["web"]["deploy"]["replicas"] = 5
    assert service_hash(scaled, "web") == service_hash(base, "web")
    assert service_hash(base, "web") != service_hash(base, "api")
    assert service_hash(build_spec(COMPOSE, {"GREETING": "ho"}, env()), "web") != service_hash(
        base, "web"
    )
    newer = build_spec(COMPOSE, {"GREETING": "hi", "TAG": "1.1"}, env())
    assert service_hash(newer, "web") != service_hash(base, "web")
    assert service_hash(newer, "api") == service_hash(base, "api")
    more_memory = build_spec(COMPOSE, {"GREETING": "hi"}, env(default_memory_limit=1 << 30))
    assert service_hash(more_memory, "api") != service_hash(base, "api")
