"""What the running frontier itself says about its backends (HAProxy's runtime API).

The database says which containers should receive a route's traffic; only HAProxy knows
whether its health checks pass right now. The stack page shows this, read from
`show stat` on the frontier's admin socket.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.traffic import process


def backend_status(
    route_ids: Iterable[int], directory: Path | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Route id -> its servers as HAProxy sees them: `server` (HAProxy's name, c<id>),
    `container_id`, `address` (ip:port), `status` (UP, DOWN, MAINT or DRAIN), `weight`
    and `current_sessions`. Every asked route is a key (an empty list when the frontier
    has no server for it); an empty dict when no frontier answers."""
    wanted = {f"r{int(rid)}": int(rid) for rid in route_ids}
    socket_path = Path(directory or settings.BERTH_FRONTIER_DIR) / process.ADMIN_SOCKET
    try:
        text = process.socket_command(socket_path, "show stat", timeout=2.0)
    except OSError:
        return {}
    found: dict[int, list[dict[str, Any]]] = {rid: [] for rid in wanted.values()}
    for row in _rows(text):
        rid = wanted.get(row.get("pxname", ""))
        if rid is None or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        found[rid].append(_server(row))
    return found


def route_counters(directory: Path | None = None) -> dict[int, dict[str, int]] | None:
    """Route id -> what HAProxy counted on the route's backend since its last reload:
    `requests` (HTTP requests; sessions on an older HAProxy), `errors` (5xx answers,
    HAProxy's own included), `latency_ms` (the average response time of the last 1,024
    requests) and `sessions` (open now). One `show stat` on the admin socket for every
    route; None when no frontier answers. The counters restart at zero with every
    reload (a new worker process), so readers treat a drop as a reset."""
    socket_path = Path(directory or settings.BERTH_FRONTIER_DIR) / process.ADMIN_SOCKET
    try:
        text = process.socket_command(socket_path, "show stat", timeout=2.0)
    except OSError:
        return None
    found: dict[int, dict[str, int]] = {}
    for row in _rows(text):
        name = row.get("pxname", "")
        if row.get("svname") != "BACKEND" or not (name[:1] == "r" and name[1:].isdecimal()):
            continue
        found[int(name[1:])] = {
            "requests": _int(row.get("req_tot")) or _int(row.get("stot")),
            "errors": _int(row.get("hrsp_5xx")),
            "latency_ms": _int(row.get("rtime")),
            "sessions": _int(row.get("scur")),
        }
    return found


def _rows(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    lines[0] = lines[0][2:]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _server(row: dict[str, str]) -> dict[str, Any]:
    name = row.get("svname", "")
    return {
        "server": name,
        "container_id": int(name[1:]) if name[1:].isdecimal() else None,
        "address": row.get("addr", ""),
        "status": _status(row.get("status", "")),
        "weight": _int(row.get("weight")),
        "current_sessions": _int(row.get("scur")),
    }


def _status(raw: str) -> str:
    """HAProxy's status ("UP 1/2", "DOWN", "no check", "MAINT (via ...)", "DRAIN") in
    the four words the pages use; a server going up or down is still what it was."""
    word = raw.split(" ", 1)[0].upper()
    if word in ("UP", "NOLB", "NO"):
        return "UP"
    if word.startswith("MAINT"):
        return "MAINT"
    if word == "DRAIN":
        return "DRAIN"
    return "DOWN"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
