"""What a compose project uses of the policy's exceptions: pure functions, no database."""

from __future__ import annotations

from apps.compose import load_compose
from apps.compose.policy import normalize_ports
from apps.deployments import exceptions

TEXT = """
services:
  web:
    image: x
    privileged: true
    cap_add: [NET_ADMIN]
  logs:
    image: x
    volumes: ["/var/log:/host-logs:ro"]
  net:
    image: x
    network_mode: host
  ok:
    image: x
    ports: ["8080:80"]
"""


def project(text: str = TEXT):
    return normalize_ports(load_compose(text, {}), "127.0.0.1")


def test_compute_lists_every_exception_with_where_and_who_granted_it():
    found = exceptions.compute(project(), interface="127.0.0.1", granted=["network_mode"])
    assert [(e["rule"], e["name"], e["granted_by"]) for e in found] == [
        ("privileged", "web", "platform admin"),
        ("cap_add", "web", "platform admin"),
        ("bind_mounts", "logs", "platform admin"),
        ("network_mode", "net", "environment"),
    ]
    labels = [exceptions.label(e) for e in found]
    assert labels == [
        "privileged mode (service web)",
        "adding capabilities (NET_ADMIN) (service web)",
        "bind mounts of host paths (/var/log) (service logs)",
        "the host network namespace (service net)",
    ]


def test_a_compliant_project_uses_none():
    text = "services: {web: {image: x, ports: ['8080:80']}}"
    assert exceptions.compute(project(text), interface="127.0.0.1") == []


def test_ports_on_other_interfaces_and_the_docker_socket_read_well():
    text = """
services:
  web:
    image: x
    ports: ["0.0.0.0:80:80"]
    volumes: ["/var/run/docker.sock:/var/run/docker.sock"]
"""
    found = exceptions.compute(project(text), interface="127.0.0.1")
    assert [exceptions.label(e) for e in found] == [
        "mounting the Docker socket (/var/run/docker.sock) gives full control of the host "
        "(service web)",
        "port 80->80/tcp is published on interface 0.0.0.0 (service web)",
    ]


def test_describe_groups_by_who_granted():
    found = exceptions.compute(project(), interface="127.0.0.1", granted=["network_mode"])
    text = exceptions.describe(found)
    assert text.startswith("privileged mode (service web), adding capabilities")
    assert text.endswith("the host network namespace (service net), granted by the environment")
    assert "(service logs), granted by a platform admin; " in text


def test_new_ones_are_the_admin_granted_exceptions_not_used_before():
    before = exceptions.compute(project(), interface="127.0.0.1")
    assert exceptions.new_ones(before, before) == []
    more = project(TEXT + "    privileged: true\n")  # "ok" becomes privileged too
    after = exceptions.compute(more, interface="127.0.0.1")
    assert [(e["rule"], e["name"]) for e in exceptions.new_ones(after, before)] == [
        ("privileged", "ok")
    ]
    granted = exceptions.compute(more, interface="127.0.0.1", granted=["privileged"])
    assert exceptions.new_ones(granted, []) == [e for e in granted if e["rule"] != "privileged"]


def test_confirmed_holds_only_inside_its_block():
    assert not exceptions.is_confirmed()
    with exceptions.confirmed():
        assert exceptions.is_confirmed()
        with exceptions.confirmed(False):
            assert not exceptions.is_confirmed()
        assert exceptions.is_confirmed()
    assert not exceptions.is_confirmed()


def test_messages_name_each_exception():
    found = exceptions.compute(project(), interface="127.0.0.1")[:1]
    assert "privileged mode (service web)" in exceptions.confirmation_message(found)
    assert exceptions.refusal_message(found) == (
        "This stack was deployed by a platform admin with exceptions to the compose policy "
        "(privileged mode on service web) that your environment does not grant; ask a "
        "platform admin to change it."
    )
    assert exceptions.refusal_message(found, revision=3).startswith("Revision r3 of this stack")
