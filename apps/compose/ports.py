"""``ports`` and ``expose`` in every syntax Compose accepts, ranges expanded.

Short syntax: ``[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`` where HOST_IP may be an IPv6
address in brackets and PUBLISHED/TARGET may be ranges ("8000-8010"). Long syntax: a
mapping with target, published, host_ip, protocol, mode. Expanding ranges here means the
policy and the driver only ever look at single ports.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from apps.compose.errors import FieldError
from apps.compose.fields import choice, each, keyed, only_keys, sequence
from apps.compose.limits import DEFAULT_LIMITS, Limits
from apps.compose.spec import ExposedPort, PortSpec
from apps.compose.values import integer, kind_of, text

PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_LONG_KEYS = ("target", "published", "host_ip", "protocol", "mode")


def parse_ports(value: Any, limits: Limits) -> tuple[PortSpec, ...]:
    """All published ports of a service; at most ``limits.max_ports`` after expansion."""
    entries = each(
        sequence(value, limits, cap=limits.max_ports), lambda item: _port_entry(item, limits)
    )
    ports = tuple(port for entry in entries for port in entry)
    if len(ports) > limits.max_ports:
        raise FieldError(
            f"too many ports ({len(ports)} after expanding ranges, at most {limits.max_ports})"
        )
    return ports


def parse_expose(value: Any, limits: Limits) -> tuple[ExposedPort, ...]:
    """``expose``: "80", "80/udp", "8000-8010" or a number."""
    entries = each(
        sequence(value, limits, cap=limits.max_ports), lambda item: _expose_entry(item, limits)
    )
    exposed = tuple(port for entry in entries for port in entry)
    if len(exposed) > limits.max_ports:
        raise FieldError(f"too many exposed ports (at most {limits.max_ports})")
    return exposed


def _expose_entry(item: Any, limits: Limits) -> list[ExposedPort]:
    spec = _port_text(item)
    body, protocol = _split_protocol(spec)
    low, high = port_range(body)
    _check_count(high - low + 1, limits)
    return [ExposedPort(port, protocol) for port in range(low, high + 1)]


def _port_entry(item: Any, limits: Limits) -> list[PortSpec]:
    if isinstance(item, dict):
        return _long_port(item)
    return _short_port(_port_text(item), limits)


def _port_text(item: Any) -> str:
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    if not isinstance(item, str):
        raise FieldError(f"expected a port like '8080:80' or a mapping, got {kind_of(item)}")
    if len(item) > 100:
        raise FieldError("port specification is too long")
    return item.strip()


def _short_port(spec: str, limits: Limits) -> list[PortSpec]:
    body, protocol = _split_protocol(spec)
    host_ip, rest = _split_host_ip(body)
    published, _, target = rest.rpartition(":")
    if ":" in published:
        raise FieldError(f"invalid port {spec!r}: expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]")
    target_range = port_range(target)
    _check_count(target_range[1] - target_range[0] + 1, limits)
    return _expand(target_range, _published(published), host_ip, protocol, "ingress")


def _check_count(count: int, limits: Limits) -> None:
    """Refuse a huge range before building one object per port."""
    if count > limits.max_ports:
        raise FieldError(f"port range of {count} ports is too large (at most {limits.max_ports})")


def _split_protocol(spec: str) -> tuple[str, str]:
    body, slash, protocol = spec.partition("/")
    if not slash:
        return spec, "tcp"
    return body, choice(protocol, PROTOCOLS)


def _split_host_ip(body: str) -> tuple[str | None, str]:
    """Split off the host address: "[::1]:80:80", "127.0.0.1:80:80", "127.0.0.1::80"."""
    if body.startswith("["):
        address, bracket, rest = body[1:].partition("]:")
        if not bracket:
            raise FieldError(f"invalid port {body!r}: unclosed '[' around the IPv6 address")
        return host_address(address), rest
    parts = body.split(":")
    if len(parts) == 3:
        return host_address(parts[0]), ":".join(parts[1:])
    if len(parts) > 3:
        raise FieldError(f"invalid port {body!r}: write IPv6 addresses in brackets, like '[::1]'")
    return None, body


def host_address(value: Any) -> str:
    """A literal IP address, normalized ("::0" and "::" compare equal afterwards)."""
    if not isinstance(value, str):
        raise FieldError(f"expected an IP address, got {kind_of(value)}")
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise FieldError(f"invalid host IP address {value!r}") from None


def port_range(spec: str) -> tuple[int, int]:
    """ "80" -> (80, 80); "8000-8010" -> (8000, 8010); each port within 1..65535."""
    match = _RANGE.match(spec)
    if match is None:
        raise FieldError(f"invalid port {spec!r}: expected a number or a range like '8000-8010'")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low == high and not 1 <= low <= 65535:
        raise FieldError(f"port {low} is out of range (1 to 65535)")
    if not 1 <= low <= high <= 65535:
        raise FieldError(f"invalid port range {spec!r}: ports go from 1 to 65535, low to high")
    return low, high


def _published(spec: str) -> tuple[int, int] | None:
    return port_range(spec) if spec else None


def _expand(
    target: tuple[int, int],
    published: tuple[int, int] | None,
    host_ip: str | None,
    protocol: str,
    mode: str,
) -> list[PortSpec]:
    """One PortSpec per container port; host and container ranges must match in length."""
    count = target[1] - target[0] + 1
    if published is not None and published[1] - published[0] + 1 != count:
        raise FieldError(
            "the host port range and the container port range must have the same length"
        )
    return [
        PortSpec(
            target=target[0] + offset,
            published=None if published is None else published[0] + offset,
            host_ip=host_ip,
            protocol=protocol,
            mode=mode,
        )
        for offset in range(count)
    ]


def _long_port(data: dict[str, Any]) -> list[PortSpec]:
    only_keys(data, _LONG_KEYS)
    if "target" not in data:
        raise FieldError("the long port syntax needs 'target'")
    target = keyed(data, "target", lambda v: integer(v, low=1, high=65535))
    published = keyed(data, "published", _long_published)
    host_ip = keyed(data, "host_ip", host_address)
    protocol = keyed(data, "protocol", lambda v: choice(v, PROTOCOLS), "tcp")
    mode = keyed(data, "mode", lambda v: choice(v, ("ingress", "host")), "ingress")
    return _expand((target, target), published, host_ip, protocol, mode)


def _long_published(value: Any) -> tuple[int, int] | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        port = integer(value, low=1, high=65535)
        return port, port
    return port_range(text(value, DEFAULT_LIMITS, size=20))
