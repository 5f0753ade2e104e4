"""Where a published port is linked to (apps.deployments.ports), without an engine."""

from types import SimpleNamespace

import pytest

from apps.deployments.ports import port_url

LOCAL = SimpleNamespace(endpoint="unix:///var/run/docker.sock", labels={})
REMOTE = SimpleNamespace(endpoint="tcp://node1.example.net:2376", labels={})
LABELLED = SimpleNamespace(endpoint="tcp://10.0.0.5:2376", labels={"address": "apps.example.net"})


def port(ip: str, number: int | None = 8080, protocol: str = "tcp") -> dict:
    return {"container_port": 80, "host_ip": ip, "host_port": number, "protocol": protocol}


@pytest.mark.parametrize(
    ("host", "binding", "request_host", "expected"),
    [
        (LOCAL, port("127.0.0.1"), "berth.test", "http://127.0.0.1:8080"),
        (LOCAL, port("0.0.0.0"), "berth.test", "http://berth.test:8080"),
        (LOCAL, port(""), "", "http://127.0.0.1:8080"),
        (LOCAL, port("::1"), "", "http://[::1]:8080"),
        (REMOTE, port("0.0.0.0"), "berth.test", "http://node1.example.net:8080"),
        (REMOTE, port("::"), "berth.test", "http://node1.example.net:8080"),
        (REMOTE, port("192.0.2.7"), "berth.test", "http://192.0.2.7:8080"),
        (REMOTE, port("127.0.0.1"), "berth.test", None),  # only the host itself reaches it
        (LABELLED, port("0.0.0.0"), "berth.test", "http://apps.example.net:8080"),
        (LOCAL, port("127.0.0.1", None), "", None),  # exposed, not published
        (LOCAL, port("127.0.0.1", 53, "udp"), "", None),
    ],
)
def test_port_url(host, binding, request_host, expected):
    assert port_url(host, binding, request_host) == expected
