"""Wrong types and junk in every position: only ComposeError (or success) may come out."""

import contextlib
import itertools

import pytest
import yaml

from apps.compose import ComposeError, load_compose
from apps.compose.policy import check_policy, normalize_ports
from apps.compose.schema import parse_project
from apps.compose.service import SERVICE_KEYS

JUNK = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    float("nan"),
    float("inf"),
    "",
    " ",
    "x",
    "${",
    "$$",
    "a=b",
    "/",
    ":",
    "::::",
    "0.0.0.0:80:80",
    "\x00",
    "é" * 10,
    [],
    [None],
    [[]],
    [{}],
    ["x"],
    [1, "a"],
    {},
    {"a": None},
    {"": ""},
    {1: 2},
    {"a": {"b": {"c": []}}},
    {"x-a": 1},
]
NESTED = {
    "healthcheck": ["test", "interval", "timeout", "retries", "start_period", "disable"],
    "deploy": ["replicas", "resources", "update_config", "placement", "labels"],
    "depends_on": ["db"],
    "networks": ["default"],
    "environment": ["A"],
    "labels": ["a"],
    "sysctls": ["a"],
}


def outcome(data) -> str:
    """Run parse + policy; return "ok" or "error". Any other exception fails the test."""
    try:
        project = parse_project(data)
    except ComposeError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return "error"
    check_policy(normalize_ports(project, "127.0.0.1"))
    return "ok"


@pytest.mark.parametrize("key", sorted(SERVICE_KEYS))
def test_junk_in_every_service_key(key):
    for value in JUNK:
        outcome({"services": {"web": {"image": "nginx", key: value}, "db": {"image": "x"}}})


@pytest.mark.parametrize("key", sorted(NESTED))
def test_junk_in_nested_keys(key):
    for sub, value in itertools.product(NESTED[key], JUNK):
        outcome({"services": {"web": {"image": "nginx", key: {sub: value}}, "db": {"image": "x"}}})


@pytest.mark.parametrize("position", ["ports", "expose", "volumes", "cap_add", "devices"])
def test_junk_inside_lists(position):
    for value in JUNK:
        outcome({"services": {"web": {"image": "nginx", position: [value]}}})


@pytest.mark.parametrize(
    "long_key",
    [
        ("ports", ["target", "published", "host_ip", "protocol", "mode"]),
        ("volumes", ["type", "source", "target", "read_only", "bind", "volume", "tmpfs"]),
    ],
)
def test_junk_in_long_syntax(long_key):
    key, fields = long_key
    base = {"ports": {"target": 80}, "volumes": {"type": "volume", "target": "/d"}}[key]
    for field, value in itertools.product(fields, JUNK):
        outcome({"services": {"web": {"image": "nginx", key: [{**base, field: value}]}}})


@pytest.mark.parametrize("section", ["volumes", "networks"])
def test_junk_in_definitions(section):
    keys = ["driver", "driver_opts", "external", "labels", "name", "internal", "attachable"]
    for field, value in itertools.product(keys, JUNK):
        outcome({"services": {"web": {"image": "x"}}, section: {"d": {field: value}}})
    for value in JUNK:
        outcome({"services": {"web": {"image": "x"}}, section: value})
        outcome({"services": {"web": {"image": "x"}}, section: {"d": value}})


def test_junk_at_top_level():
    for value in JUNK:
        assert outcome(value) == "error"
        outcome({"services": value})
        outcome({"services": {"web": value}})
        outcome({"name": value, "services": {"web": {"image": "x"}}})
        outcome({"version": value, "services": {"web": {"image": "x"}}})


def test_junk_as_keys():
    for key in ["", "x" * 300, "web!", "x-"]:
        outcome({"services": {"web": {"image": "x", key: 1}}})
        outcome({"services": {key: {"image": "x"}}})
        outcome({"services": {"web": {"image": "x"}}, "volumes": {key: None}})


@pytest.mark.parametrize(
    "text",
    [
        "services:\n  web: !!binary aGk=",
        "services: {web: {image: *x}}",
        "services: [",
        "{{{",
        "services:\n\tweb: x",
        "%YAML 1.1\n---\nservices: {}",
        "? a\n? b",
        "- - - -",
        "'",
        'services: {web: {image: x, ports: ["${P"]}}',
        "&a a: *a",
    ],
)
def test_broken_yaml_text(text):
    with pytest.raises(ComposeError):
        load_compose(text)


def test_yaml_dumped_junk_through_the_whole_pipeline():
    for key, value in itertools.product(sorted(SERVICE_KEYS), JUNK[:20]):
        doc = {"services": {"web": {"image": "nginx", key: value}}}
        try:
            text = yaml.safe_dump(doc)
        except yaml.YAMLError:
            continue
        with contextlib.suppress(ComposeError):
            load_compose(text, {"P": "1"})
