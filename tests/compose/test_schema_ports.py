"""ports and expose: short syntax (addresses, ranges, protocols) and long syntax."""

import pytest

from apps.compose.spec import ExposedPort, PortSpec

from .helpers import service, service_refused


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortSpec(80)]),
        (80, [PortSpec(80)]),
        ("8080:80", [PortSpec(80, 8080)]),
        ("127.0.0.1:8080:80", [PortSpec(80, 8080, "127.0.0.1")]),
        ("127.0.0.1:8080:80/tcp", [PortSpec(80, 8080, "127.0.0.1")]),
        ("127.0.0.1::80", [PortSpec(80, None, "127.0.0.1")]),
        ("0.0.0.0:80:80", [PortSpec(80, 80, "0.0.0.0")]),
        ("53:53/udp", [PortSpec(53, 53, protocol="udp")]),
        ("9000/sctp", [PortSpec(9000, protocol="sctp")]),
        ("[::1]:8080:80", [PortSpec(80, 8080, "::1")]),
        ("[0:0::1]:8080:80", [PortSpec(80, 8080, "::1")]),
        ("[::]:80:80", [PortSpec(80, 80, "::")]),
        ("8000-8001:9000-9001", [PortSpec(9000, 8000), PortSpec(9001, 8001)]),
        ("3000-3001", [PortSpec(3000), PortSpec(3001)]),
        (
            "127.0.0.1:5000-5001:5000-5001/udp",
            [PortSpec(5000, 5000, "127.0.0.1", "udp"), PortSpec(5001, 5001, "127.0.0.1", "udp")],
        ),
    ],
)
def test_short_syntax(spec, expected):
    assert list(service({"ports": [spec]}).ports) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"target": 80}, [PortSpec(80)]),
        ({"target": 80, "published": 8080}, [PortSpec(80, 8080)]),
        ({"target": 80, "published": "8080"}, [PortSpec(80, 8080)]),
        (
            {
                "target": "80",
                "published": "8080",
                "host_ip": "127.0.0.1",
                "protocol": "udp",
                "mode": "host",
            },
            [PortSpec(80, 8080, "127.0.0.1", "udp", "host")],
        ),
        ({"target": 80, "host_ip": "::1"}, [PortSpec(80, None, "::1")]),
        ({"target": 80, "published": ""}, [PortSpec(80)]),
    ],
)
def test_long_syntax(spec, expected):
    assert list(service({"ports": [spec]}).ports) == expected


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("99999:80", "port 99999 is out of range"),
        ("0:80", "port 0 is out of range"),
        ("abc", "invalid port 'abc'"),
        ("80/icmp", "expected one of tcp, udp, sctp"),
        ("1.2.3.4:5:6:7", "write IPv6 addresses in brackets"),
        ("999.0.0.1:80:80", "invalid host IP address"),
        ("localhost:80:80", "invalid host IP address"),
        ("[::1:80:80", "unclosed '['"),
        ("8000-8002:80-81", "same length"),
        ("8000-8001:80", "same length"),
        ("9-1", "low to high"),
        ("1-65535", "too large"),
        ({"published": 80}, "needs 'target'"),
        ({"target": 80, "foo": 1}, "key 'foo' is not supported by Berth"),
        ({"target": 70000}, "out of range"),
        ({"target": 80, "published": "1-3"}, "same length"),
        ({"target": 80, "protocol": "tcp6"}, "expected one of"),
        ({"target": 80, "mode": "weird"}, "expected one of"),
        ({"target": 80, "host_ip": 127}, "expected an IP address"),
        (True, "expected a port"),
        ([80], "expected a port"),
        ("x" * 200, "too long"),
    ],
)
def test_bad_ports(spec, needle):
    message = service_refused({"ports": [spec]})
    assert message.startswith("service 'web': ports[0]")
    assert needle in message


def test_bad_port_is_located_in_the_list():
    message = service_refused({"ports": ["80", "bad"]})
    assert message.startswith("service 'web': ports[1]: invalid port 'bad'")


def test_ports_must_be_a_list():
    assert "expected a list, got a string" in service_refused({"ports": "80:80"})


def test_too_many_ports_after_expansion():
    message = service_refused({"ports": ["1000-1060", "2000-2060"]})
    assert "too many ports (122 after expanding ranges, at most 100)" in message


def test_expose():
    exposed = service({"expose": [80, "90/udp", "100-101"]}).expose
    assert exposed == (ExposedPort(80), ExposedPort(90, "udp"), ExposedPort(100), ExposedPort(101))


@pytest.mark.parametrize("spec", ["80:80", "abc", "0", {"target": 1}, "1-5000"])
def test_bad_expose(spec):
    assert service_refused({"expose": [spec]}).startswith("service 'web': expose[0]")
