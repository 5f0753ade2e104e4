"""Top level: allowed keys, definitions, names, references, cycles and limits."""

import dataclasses
import json

import pytest
import yaml

from apps.compose import ComposeError, Limits, load_compose
from apps.compose.schema import parse_project, start_order
from apps.compose.spec import NetworkSpec, VolumeSpec

from .helpers import load, refused


def test_minimal_project():
    project = load("services:\n  web:\n    image: nginx\n")
    assert list(project.services) == ["web"]
    assert project.name is None and project.volumes == {} and project.networks == {}


def test_version_is_ignored_and_name_read():
    project = load("version: '3.8'\nname: my-app_1\nservices: {web: {image: x}}")
    assert project.name == "my-app_1"


def test_bad_project_name():
    assert refused("name: My App\nservices: {web: {image: x}}") == [
        "name: invalid project name 'My App': use lower-case letters, digits, '-' and '_'"
    ]


def test_extensions_at_top_level_and_anchors_from_them():
    project = load(
        """
        x-defaults: &defaults
          restart: always
          environment: {TZ: UTC}
        services:
          web:
            <<: *defaults
            image: nginx
        """
    )
    assert project.extensions["x-defaults"]["restart"] == "always"
    assert project.services["web"].environment == {"TZ": "UTC"}


@pytest.mark.parametrize("key", ["include", "foo", "Services"])
def test_unknown_top_level_keys(key):
    messages = refused({"services": {"web": {"image": "x"}}, key: {}})
    assert messages[0].startswith(f"top-level key '{key}' is not supported by Berth")


def test_non_string_top_level_key():
    assert "top-level key 1 is not supported" in refused("1: x\nservices: {web: {image: x}}")[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "got nothing"),
        ("- a\n- b", "got a list"),
        ("just text", "got a string"),
        ("42", "got a number"),
        ("services:", "defines no services"),
        ("services: {}", "defines no services"),
        ("version: '3'", "defines no services"),
        ("services: [web]", "expected a mapping, got a list"),
    ],
)
def test_non_mapping_or_empty(text, needle):
    assert any(needle in message for message in refused(text))


def test_volume_and_network_definitions():
    project = load(
        """
        services: {web: {image: x}}
        volumes:
          plain:
          local: {driver: local, driver_opts: {type: tmpfs, device: tmpfs, o: "size=100m"},
                  labels: [team=a]}
          ext: {external: true}
          legacy: {external: {name: shared_data}}
          named: {name: fixed_name, x-note: 1}
        networks:
          front: {driver: bridge, internal: true, attachable: "true", labels: {a: b}}
          outside: {external: true, name: proxy}
        """
    )
    assert project.volumes["plain"] == VolumeSpec("plain")
    assert project.volumes["local"].driver_opts == {
        "type": "tmpfs",
        "device": "tmpfs",
        "o": "size=100m",
    }
    assert project.volumes["local"].labels == {"team": "a"}
    assert project.volumes["ext"].external and project.volumes["ext"].name is None
    assert project.volumes["legacy"] == VolumeSpec("legacy", external=True, name="shared_data")
    assert project.volumes["named"].name == "fixed_name"
    assert project.networks["front"] == NetworkSpec(
        "front", driver="bridge", labels={"a": "b"}, internal=True, attachable=True
    )
    assert project.networks["outside"].external and project.networks["outside"].name == "proxy"


@pytest.mark.parametrize(
    ("section", "body", "needle"),
    [
        ("volumes", {"d": {"driver_opts": "x"}}, "volume 'd': driver_opts: expected a mapping"),
        ("volumes", {"d": {"ipam": {}}}, "volume 'd': ipam: key 'ipam' is not supported"),
        ("volumes", {"bad name": None}, "invalid volume name"),
        ("volumes", {"d": {"external": "maybe"}}, "volume 'd': external: expected true or false"),
        ("volumes", {"d": 5}, "volume 'd': expected a mapping"),
        ("networks", {"n": {"ipam": {}}}, "network 'n': ipam: key 'ipam' is not supported"),
        ("networks", {"n": {"internal": 3}}, "network 'n': internal: expected true or false"),
        ("networks", {"n": {"name": "bad name"}}, "invalid engine name"),
        ("networks", [], "networks: expected a mapping, got a list"),
    ],
)
def test_bad_definitions(section, body, needle):
    messages = refused({"services": {"web": {"image": "x"}}, section: body})
    assert any(needle in message for message in messages), messages


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "a" * 64, "we b", "ü"])
def test_service_names_must_be_dns_labels(name):
    messages = refused({"services": {name: {"image": "x"}}})
    assert messages == [
        f"service {name!r}: invalid service name: use 1 to 63 lower-case letters, digits and "
        "'-', starting and ending with a letter or digit"
    ]


def test_service_must_be_a_mapping():
    assert refused({"services": {"web": "nginx"}}) == [
        "service 'web': expected a mapping, got a string"
    ]
    assert refused({"services": {"web": None}}) == [
        "service 'web': expected a mapping, got nothing"
    ]


def test_service_count_limit():
    services = {f"s{i}": {"image": "x"} for i in range(51)}
    assert refused({"services": services}) == ["too many services (51, at most 50)"]
    assert (
        len(load_compose(yaml.safe_dump({"services": dict(list(services.items())[:50])})).services)
        == 50
    )


def test_string_length_limit():
    message = refused({"services": {"web": {"image": "x", "environment": {"A": "x" * 20000}}}})
    assert message == [
        "service 'web': environment.A: value is too long (20000 characters, at most 16384)"
    ]


def test_limits_are_configurable():
    with pytest.raises(ComposeError, match="too many services"):
        load_compose("services: {a: {image: x}, b: {image: x}}", limits=Limits(max_services=1))


class TestReferences:
    def test_missing_dependency(self):
        assert refused({"services": {"web": {"image": "x", "depends_on": ["db"]}}}) == [
            "service 'web': depends_on: depends on undefined service 'db'"
        ]

    def test_self_dependency(self):
        assert refused({"services": {"web": {"image": "x", "depends_on": ["web"]}}}) == [
            "service 'web': depends_on: a service cannot depend on itself"
        ]

    def test_cycle_is_named(self):
        messages = refused(
            {
                "services": {
                    "a": {"image": "x", "depends_on": ["b"]},
                    "b": {"image": "x", "depends_on": {"c": {"condition": "service_healthy"}}},
                    "c": {"image": "x", "depends_on": ["a"]},
                    "d": {"image": "x", "depends_on": ["a"]},
                }
            }
        )
        assert messages == ["dependency cycle: a -> b -> c -> a"]

    def test_cycle_through_network_mode(self):
        messages = refused(
            {
                "services": {
                    "a": {"image": "x", "depends_on": ["b"]},
                    "b": {"image": "x", "network_mode": "service:a"},
                }
            }
        )
        assert messages == ["dependency cycle: a -> b -> a"]

    def test_service_modes_must_name_a_sibling(self):
        messages = refused(
            {"services": {"a": {"image": "x", "network_mode": "service:zz", "pid": "service:a"}}}
        )
        assert messages == [
            "service 'a': network_mode: refers to undefined or own service 'zz'",
            "service 'a': pid: refers to undefined or own service 'a'",
        ]

    def test_start_order(self):
        project = load(
            """
            services:
              web: {image: x, depends_on: [api, cache]}
              api: {image: x, depends_on: {db: {condition: service_healthy}}}
              db: {image: x}
              cache: {image: x}
              worker: {image: x, network_mode: "service:api"}
            """
        )
        assert start_order(project) == [["cache", "db"], ["api"], ["web", "worker"]]


def test_project_is_json_serializable():
    project = load(
        """
        services:
          web:
            image: nginx
            ports: ["127.0.0.1:80:80"]
            healthcheck: {test: "true", interval: 5s}
            deploy: {replicas: 2}
        """
    )
    data = json.loads(json.dumps(dataclasses.asdict(project)))
    assert data["services"]["web"]["ports"][0]["published"] == 80


def test_parse_project_accepts_plain_data():
    project = parse_project({"services": {"web": {"image": "nginx", "privileged": False}}})
    assert project.services["web"].privileged is False


def test_parsed_project_is_immutable():
    project = load("services: {web: {image: x}}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.services["web"].privileged = True
