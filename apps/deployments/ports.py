"""Where a browser reaches a container's published port: the address to link to.

Docker publishes a port on an interface of the engine's machine. Which address reaches
it depends on the binding and on where that machine is:

- bound to loopback (127.0.0.1, ::1): only from the machine itself; linked when the
  engine is local (its endpoint a unix socket: the portal's own machine), else not;
- bound to every interface (0.0.0.0, ::): a local engine's port is on the machine the
  browser reached the portal at (the request's host name); a remote engine's on the
  host's public address, its `address` label when set, else its endpoint's host name;
- bound to one address: that address.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost

WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - compared with, never bound


def is_local(host: Any) -> bool:
    return str(host.endpoint).startswith(("unix://", "npipe://"))


def _public_address(host: Any) -> str:
    label = (getattr(host, "labels", None) or {}).get("address", "")
    if label:
        return str(label)
    return urlsplit(str(host.endpoint).replace("tcp://", "http://", 1)).hostname or ""


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def port_url(host: Any, port: dict[str, Any], request_host: str = "") -> str | None:
    """The http:// address of one published port, or None when no browser can reach it
    (not published, UDP, or loopback on a remote machine)."""
    host_port = port.get("host_port")
    if not host_port or (port.get("protocol") or "tcp") != "tcp" or host is None:
        return None
    ip = str(port.get("host_ip") or "")
    if ip in WILDCARDS:
        address = (request_host or "127.0.0.1") if is_local(host) else _public_address(host)
    elif _loopback(ip):
        if not is_local(host):
            return None
        address = ip
    else:
        address = ip
    if not address:
        return None
    return f"http://{_bracketed(address)}:{int(host_port)}"


def request_host_name(request: Any) -> str:
    """The host name (without port) the browser used to reach the portal."""
    if request is None:
        return ""
    try:
        return urlsplit("//" + request.get_host()).hostname or ""
    except DisallowedHost:
        return ""
