"""The frontier's configuration: rendered from the database, checked, then reloaded.

`apply(reason)` is the only way the running frontier changes. Under a lock it takes a
`Snapshot` of the routes and their servers, renders it (`render`, a pure function of
the snapshot: the unit tests and the 500-route benchmark call it with plain data),
writes the result beside the live configuration, runs `haproxy -c` on it and only then
moves it in place and reloads the master. A candidate that fails the check is never
used: the previous configuration keeps serving and the error is recorded in
`status.json` (the staff page shows it) and returned.

Host names and paths are user input that ends up in HAProxy's files, so the renderer
accepts only what it can write safely (host names of [a-z0-9.-], paths of
[A-Za-z0-9._~/%-]); a route it cannot express is skipped and reported, never rendered.

Routing: the Host header (lowercased, port stripped) followed by the path is looked up
first in an exact map, then in a prefix map whose entries are ordered longest first
(HAProxy's `map_beg` takes the first match), so `/api/v2` wins over `/api` and `/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from apps.deployments.health import check_of
from apps.deployments.models import Container, Revision, Rollout, Route, Stack
from apps.hosts.models import Host
from apps.traffic import certificates, process

log = logging.getLogger(__name__)

# Whole-string patterns (\Z: a trailing newline never passes, unlike "$").
HOSTNAME_RE = re.compile(
    r"\A(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)
PATH_RE = re.compile(r"\A/[A-Za-z0-9._~/%-]{0,199}\Z")
ACME_TOKEN_RE = re.compile(r"\A[A-Za-z0-9_-]{1,200}\Z")
ACME_KEYAUTH_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,400}\Z")
FILE_RE = re.compile(r"\A/[A-Za-z0-9._/+-]{1,4000}\Z")

STATUS_FILE = "status.json"
SERVER_STATE = "server-state"
LOCK_FILE = "apply.lock"
GENERATIONS = "gen"
# pg_advisory_lock key: "berthfro" as an integer; one frontier apply at a time per database.
ADVISORY_KEY = int.from_bytes(b"berthfro", "big") & 0x7FFF_FFFF_FFFF_FFFF
MAX_WEIGHT = 256
# An apply takes well under a second; one stuck in `haproxy -c` (60 s) and a failed
# reload with its restore (2 x 15 s) is the longest a next one waits.
LOCK_WAIT_SECONDS = 120
HEALTHY = ("healthy", "")
CANARY_STATES = ("canary", "promoting", "aborting")

NOT_FOUND_PAGE = """<!doctype html>
<html><head><title>404 No route</title></head>
<body><h1>404 No route</h1><p>No application is served at this address by Berth.</p></body>
</html>
"""


# --- the snapshot: plain data, everything the renderer needs -------------------------


@dataclass(frozen=True)
class ServerSnap:
    """One container behind a route. A task on a Swarm node is reached on its node's
    address, at the port the node published for the route's container port: `ports`
    maps container ports to those (`published` is True); a container on an engine is
    reached on its own address, at the container port."""

    id: int
    address: str
    revision: int = 0
    published: bool = False
    ports: tuple[tuple[int, int], ...] = ()

    def port_for(self, container_port: int) -> int | None:
        """Where to reach `container_port`; None when a Swarm task does not publish it."""
        if not self.published:
            return container_port
        return dict(self.ports).get(container_port)


@dataclass(frozen=True)
class RouteSnap:
    """One route, with the servers that may receive its traffic (already filtered)."""

    id: int
    hostname: str
    path: str
    port: int
    servers: tuple[ServerSnap, ...] = ()
    balance: str = "roundrobin"
    sticky: bool = False
    redirect_https: bool = False
    # How HAProxy checks each server: "tcp" (a connection) or "http" (GET check_path,
    # expecting check_expect or any 2xx/3xx), on check_port (None: the route's port).
    check_kind: str = "tcp"
    check_path: str = "/"
    check_port: int | None = None
    check_expect: int | None = None
    # While a canary runs: the new revision and the percentage of traffic it gets.
    canary_revision: int | None = None
    canary_weight: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Everything a configuration is made from; `render` reads nothing else."""

    directory: str
    addr: str
    tls_addr: str = ""
    routes: tuple[RouteSnap, ...] = ()
    certificates: dict[str, str] = field(default_factory=dict)
    challenges: dict[str, str] = field(default_factory=dict)
    extra_global: str = ""


@dataclass
class Rendered:
    """A configuration and its companion files (name -> text), and what was left out."""

    config: str
    files: dict[str, str]
    generation: str
    skipped: list[str]
    routes: int
    servers: int


@dataclass
class Result:
    """What `apply` did: `ok` false means the running frontier did not change."""

    ok: bool
    reloaded: bool = False
    error: str = ""
    skipped: list[str] = field(default_factory=list)
    routes: int = 0
    servers: int = 0
    seconds: float = 0.0


# --- snapshot from the database --------------------------------------------------------


ROUTE_FIELDS = (
    "pk",
    "hostname",
    "path",
    "port",
    "balance",
    "sticky",
    "redirect_https",
    "service_id",
    "service__name",
    "stack_id",
    "stack__current_revision_id",
)


def snapshot() -> Snapshot:
    """The routes of every tenant's running stacks, with their servers: containers of the
    route's service that run, are healthy (or have no health check), are not draining and
    have an address. Plain rows (`values`), a handful of queries whatever the count."""
    running = Stack.Desired.RUNNING
    routes = list(
        Route.objects.filter(stack__desired_state=running).order_by("pk").values(*ROUTE_FIELDS)
    )
    servers: dict[int, list[ServerSnap]] = {}
    rows = Container.objects.filter(
        service_id__in={r["service_id"] for r in routes},
        state="running",
        health__in=HEALTHY,
        draining=False,
    ).exclude(address="")
    fields = ("pk", "service_id", "address", "revision", "ports", "host__kind")
    for c in rows.order_by("pk").values(*fields):
        servers.setdefault(c["service_id"], []).append(_server(c))
    specs = dict(
        Revision.objects.filter(
            pk__in={r["stack__current_revision_id"] for r in routes} - {None}
        ).values_list("pk", "spec")
    )
    canaries = {
        (r.stack_id, r.service): r
        for r in Rollout.objects.filter(state__in=CANARY_STATES, stack__desired_state=running)
    }
    return Snapshot(
        directory=str(settings.BERTH_FRONTIER_DIR),
        addr=settings.BERTH_FRONTIER_ADDR,
        tls_addr=settings.BERTH_FRONTIER_TLS_ADDR,
        routes=tuple(_route_snap(r, servers, specs, canaries) for r in routes),
        certificates=dict(certificates.certificate_files()),
        challenges=dict(certificates.acme_challenges()),
        extra_global=settings.BERTH_FRONTIER_EXTRA_GLOBAL,
    )


def _server(row: dict) -> ServerSnap:
    if row["host__kind"] != Host.Kind.SWARM:
        return ServerSnap(id=row["pk"], address=row["address"], revision=row["revision"])
    ports = tuple(
        (int(p["container_port"]), int(p["host_port"]))
        for p in row["ports"] or ()
        if p.get("container_port") and p.get("host_port")
    )
    return ServerSnap(
        id=row["pk"], address=row["address"], revision=row["revision"], published=True, ports=ports
    )


def _route_snap(route: dict, servers: dict, specs: dict, canaries: dict) -> RouteSnap:
    service = route["service__name"]
    rollout = canaries.get((route["stack_id"], service))
    check = check_of(specs.get(route["stack__current_revision_id"]), service)
    return RouteSnap(
        id=route["pk"],
        hostname=route["hostname"],
        path=route["path"] or "/",
        port=route["port"],
        servers=tuple(servers.get(route["service_id"], ())),
        balance=route["balance"],
        sticky=route["sticky"],
        redirect_https=route["redirect_https"],
        check_kind="http" if check.kind == "http" else "tcp",
        check_path=check.path if check.kind == "http" else "/",
        check_port=check.port if check.probed and check.port else None,
        check_expect=check.expect_status if check.kind == "http" else None,
        canary_revision=rollout.to_revision if rollout else None,
        canary_weight=rollout.canary_weight if rollout else 0,
    )


# --- the pure renderer -----------------------------------------------------------------


def render(snap: Snapshot) -> Rendered:
    """The HAProxy configuration and companion files for `snap` (no I/O)."""
    skipped: list[str] = []
    exact: dict[str, str] = {}
    prefix: dict[str, str] = {}
    backends: list[str] = []
    redirects: list[str] = []
    certs = _safe_certificates(snap.certificates, skipped)
    tls = bool(certs) and bool(snap.tls_addr)
    servers = 0
    for route in sorted(snap.routes, key=lambda r: r.id):
        problem = _route_problem(route)
        name = f"r{route.id}"
        keys = _map_keys(route)
        if not problem and (keys[0] in exact or keys[1] in prefix):
            problem = "another route already serves this host name and path"
        if problem:
            skipped.append(f"route {route.id} ({route.hostname}{route.path}): {problem}")
            continue
        if keys[0]:
            exact[keys[0]] = name
        prefix[keys[1]] = name
        backends.append(_backend(route))
        servers += len(route.servers)
        if route.redirect_https and tls and route.hostname in certs:
            redirects.append(name)
        elif route.redirect_https:
            skipped.append(
                f"route {route.id} ({route.hostname}{route.path}): no HTTPS redirect, "
                "no certificate for this host name"
            )
    challenges = {
        t: k
        for t, k in sorted(snap.challenges.items())
        if ACME_TOKEN_RE.match(t) and ACME_KEYAUTH_RE.match(k)
    }
    files = {
        "exact.map": _map_file(sorted(exact.items())),
        "prefix.map": _map_file(sorted(prefix.items(), key=lambda kv: (-len(kv[0]), kv[0]))),
        "acme.map": _map_file(sorted(challenges.items())),
        "404.html": NOT_FOUND_PAGE,
    }
    if tls:
        files["crt-list.txt"] = "".join(f"{path} {host}\n" for host, path in sorted(certs.items()))
    generation = _digest(files)
    gen_dir = f"{snap.directory}/{GENERATIONS}/{generation}"
    parts = [
        _global(snap),
        DEFAULTS,
        _frontend("http", snap.addr, gen_dir, challenges, redirects, snap.tls_addr, tls=False),
    ]
    if tls:
        parts.append(_frontend("https", snap.tls_addr, gen_dir, {}, [], "", tls=True))
    parts.append(NO_ROUTE_BACKEND.format(gen=gen_dir))
    parts.extend(backends)
    return Rendered(
        config="\n".join(parts),
        files=files,
        generation=generation,
        skipped=skipped,
        routes=len(backends),
        servers=servers,
    )


def _route_problem(route: RouteSnap) -> str:
    """Why the renderer cannot express this route safely ('' when it can)."""
    if not HOSTNAME_RE.match(route.hostname or ""):
        return "host name must be letters a-z, digits, dots and hyphens"
    if not PATH_RE.match(route.path or ""):
        return "path must start with / and use only A-Z a-z 0-9 . _ ~ / % -"
    if not 1 <= route.port <= 65535:
        return "port out of range"
    if route.balance not in ("roundrobin", "leastconn"):
        return f"unknown balance {route.balance!r}"
    if route.check_kind not in ("tcp", "http") or not PATH_RE.match(route.check_path):
        return "the health check's kind or path cannot be rendered"
    if route.check_port is not None and not 1 <= route.check_port <= 65535:
        return "the health check's port is out of range"
    if route.check_expect is not None and not 100 <= route.check_expect <= 599:
        return "the health check's expected status is out of range"
    return ""


def _map_keys(route: RouteSnap) -> tuple[str, str]:
    """(exact key or '', prefix key): "/api" serves "/api" itself and everything under
    "/api/", never "/apix"."""
    path = route.path.rstrip("/")
    if not path:
        return "", f"{route.hostname}/"
    return f"{route.hostname}{path}", f"{route.hostname}{path}/"


def _map_file(items: list[tuple[str, str]]) -> str:
    return "".join(f"{key} {value}\n" for key, value in items)


def _digest(files: dict[str, str]) -> str:
    sha = hashlib.sha256()
    for name in sorted(files):
        sha.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return sha.hexdigest()[:16]


def _safe_certificates(files: dict[str, str], skipped: list[str]) -> dict[str, str]:
    safe = {}
    for host, path in files.items():
        if HOSTNAME_RE.match(host) and FILE_RE.match(str(path)):
            safe[host] = str(path)
        else:
            skipped.append(f"certificate for {host!r}: host name or file name cannot be used")
    return safe


def server_weights(route: RouteSnap) -> dict[int, int]:
    """Container id -> HAProxy weight. Without a canary every server weighs the same;
    with one, the canary revision's servers together get `canary_weight` percent of the
    traffic and the others the rest, whatever the number of containers on each side."""
    new = [s for s in route.servers if s.revision == route.canary_revision]
    old = [s for s in route.servers if s.revision != route.canary_revision]
    if route.canary_revision is None or not new or not old:
        return {s.id: 1 for s in route.servers}
    share = min(max(route.canary_weight, 0), 100)
    if share in (0, 100):
        return {s.id: int((s in new) == (share == 100)) for s in route.servers}
    w_new, w_old = _weight_pair(share * len(old), (100 - share) * len(new))
    return {s.id: w_new if s in new else w_old for s in route.servers}


def _weight_pair(new: int, old: int) -> tuple[int, int]:
    """Per-server weights (1..256 each, HAProxy's range) whose ratio is closest to
    new:old; exact when the reduced ratio fits."""
    g = math.gcd(new, old)
    new, old = new // g, old // g
    if max(new, old) <= MAX_WEIGHT:
        return new, old
    best = (math.inf, 1, 1)
    for w_old in range(1, MAX_WEIGHT + 1):
        w_new = min(MAX_WEIGHT, max(1, round(w_old * new / old)))
        error = abs(w_new / (w_new + w_old) - new / (new + old))
        best = min(best, (error, w_new, w_old))
    return best[1], best[2]


def _global(snap: Snapshot) -> str:
    extra = "".join(f"    {line.strip()}\n" for line in snap.extra_global.splitlines() if line)
    return GLOBAL.format(dir=snap.directory) + extra


def _frontend(
    name: str,
    addr: str,
    gen: str,
    challenges: dict[str, str],
    redirects: list[str],
    tls_addr: str,
    *,
    tls: bool,
) -> str:
    lines = [f"frontend {name}"]
    if tls:
        lines.append(f"    bind {addr} ssl crt-list {gen}/crt-list.txt alpn h2,http/1.1")
        lines.append("    http-request set-header X-Forwarded-Proto https")
    else:
        lines.append(f"    bind {addr}")
        lines.append("    http-request set-header X-Forwarded-Proto http")
    lines += [
        "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
        "    http-request set-var(txn.path) path",
        "    http-request set-var(txn.route) var(txn.host),concat(,txn.path,)",
    ]
    if challenges:
        lines += [
            "    http-request set-var(txn.acme) path,field(4,/),"
            f"map_str({gen}/acme.map) if {{ path_beg /.well-known/acme-challenge/ }}",
            "    http-request return status 200 content-type text/plain "
            'lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
        ]
    lines += [
        f"    http-request set-var(txn.backend) var(txn.route),map_str({gen}/exact.map)",
        f"    http-request set-var(txn.backend) var(txn.route),map_beg({gen}/prefix.map)"
        " unless { var(txn.backend) -m found }",
    ]
    if redirects:
        port = tls_addr.rpartition(":")[2]
        suffix = "" if port == "443" else f":{port}"
        lines.append(
            f"    http-request redirect location https://%[var(txn.host)]{suffix}"
            f"%[capture.req.uri] code 302 if {{ var(txn.backend) -m str {' '.join(redirects)} }}"
        )
    lines += [
        # A request that may have reached the application is retried only when
        # repeating it is harmless; a connection that failed is always retried.
        "    http-request disable-l7-retry unless METH_GET || METH_HEAD",
        "    use_backend %[var(txn.backend)] if { var(txn.backend) -m found }",
        "    default_backend no_route",
        "",
    ]
    return "\n".join(lines)


def _backend(route: RouteSnap) -> str:
    lines = [f"backend r{route.id}", f"    balance {route.balance}"]
    if route.sticky:
        lines.append(f"    cookie berth-r{route.id} insert indirect nocache httponly")
    if route.check_kind == "http":
        # HTTP/1.1 with the route's own Host: a virtual-host server answers its check as
        # it answers the route's requests (HTTP/1.0 without a Host often gets a 400).
        lines.append("    option httpchk")
        lines.append(
            f"    http-check send meth GET uri {route.check_path} ver HTTP/1.1 "
            f"hdr Host {route.hostname}"
        )
        if route.check_expect is not None:
            lines.append(f"    http-check expect status {route.check_expect}")
    weights = server_weights(route)
    for server in route.servers:
        address = _address(server.address)
        port = server.port_for(route.port)
        if address is None or port is None:
            continue
        line = (
            f"    server c{server.id} {address}:{port} weight {weights[server.id]}"
            " check inter 1s fall 2 rise 2"
        )
        # A Swarm task publishes the route's port only: its check goes there.
        check_port = server.port_for(route.check_port) if route.check_port else None
        if check_port:
            line += f" port {check_port}"
        if route.sticky:
            line += f" cookie c{server.id}"
        lines.append(line)
    lines.append("")
    return "\n".join(lines)


def _address(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    return f"[{ip}]" if ip.version == 6 else str(ip)


GLOBAL = """\
# Rendered by Berth (apps/traffic/frontier.py) from its database: edits are overwritten.
global
    stats socket {dir}/admin.sock mode 600 level admin expose-fd listeners
    server-state-file {dir}/server-state
    hard-stop-after 30s
    ssl-default-bind-options ssl-min-ver TLSv1.2
"""

DEFAULTS = """\
defaults
    mode http
    option forwardfor
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout
    http-reuse safe
    load-server-state-from-file global
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    timeout tunnel 1h
    timeout check 2s
"""

NO_ROUTE_BACKEND = """\
backend no_route
    http-request return status 404 content-type "text/html; charset=utf-8" file {gen}/404.html
"""


# --- apply: lock, render, check, install, reload ---------------------------------------


def directory() -> Path:
    """The frontier's folder (BERTH_FRONTIER_DIR)."""
    return Path(settings.BERTH_FRONTIER_DIR)


def apply(reason: str = "") -> Result:
    """Make the frontier serve what the database says (see the module docstring).

    When no frontier runs in BERTH_FRONTIER_DIR the configuration is still rendered,
    checked and installed, so the next start uses it."""
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with _locked(folder):
            result = install(folder, render(snapshot()))
            result.seconds = round(time.monotonic() - started, 3)
            record(folder, reason, result)
    except (FrontierBusyError, OSError, subprocess.SubprocessError) as exc:
        # Busy, haproxy missing or too slow to check, a file that cannot be written:
        # recorded and shown like a refused configuration, never raised to the caller.
        result = Result(ok=False, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            record(folder, reason, result)
    if not result.ok:
        log.warning("frontier apply (%s) failed: %s", reason, result.error)
    return result


def install(directory: Path, rendered: Rendered) -> Result:
    """Write `rendered` beside the live configuration, check it, move it in place and
    reload a running frontier. The caller holds the lock."""
    directory = Path(directory)
    result = Result(
        ok=False, skipped=rendered.skipped, routes=rendered.routes, servers=rendered.servers
    )
    live = directory / process.CONFIG
    running = process.is_running(directory)
    if running and _same(live, rendered.config):
        result.ok = True  # the frontier serves exactly this already: no reload
        return result
    gen_dir = directory / GENERATIONS / rendered.generation
    previous = _current_generation(live)
    gen_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        _write(gen_dir / name, text)
    state = directory / SERVER_STATE
    if not state.exists():
        _write(state, "1\n")  # an empty state (version 1): no warning from haproxy -c
    candidate = directory / (process.CONFIG + ".new")
    _write(candidate, rendered.config)
    error = process.check(candidate)
    if error:
        if rendered.generation != previous:
            shutil.rmtree(gen_dir, ignore_errors=True)
        result.error = f"haproxy -c refused the new configuration:\n{error}"
        return result
    if running:
        _save_server_state(directory)
        if live.exists():
            shutil.copyfile(live, directory / (process.CONFIG + ".prev"))
    os.replace(candidate, live)
    if running:
        try:
            process.reload(directory)
        except process.FrontierProcessError as exc:
            result.error = str(exc)
            _restore(directory)
            return result
        result.reloaded = True
    _prune(directory, keep={rendered.generation})
    result.ok = True
    return result


def _restore(directory: Path) -> None:
    """After a reload that failed (HAProxy -c cannot see everything, a listener that
    cannot be bound for one), put the previous configuration back and reload on it, so
    the master leaves its waiting mode and a later restart starts what serves now."""
    previous = directory / (process.CONFIG + ".prev")
    if not previous.exists():
        return
    os.replace(previous, directory / process.CONFIG)
    try:
        process.reload(directory)
    except process.FrontierProcessError as exc:
        log.error("frontier: the previous configuration did not reload either: %s", exc)


def _same(live: Path, config: str) -> bool:
    try:
        return live.read_text() == config
    except OSError:
        return False


def _save_server_state(directory: Path) -> None:
    """Keep the servers' health across the reload (`load-server-state-from-file`): a
    server the old worker saw down is not taken for up by the new one."""
    try:
        state = process.socket_command(directory / process.ADMIN_SOCKET, "show servers state")
    except OSError:
        return
    _write(directory / SERVER_STATE, state)


def _current_generation(live: Path) -> str:
    try:
        text = live.read_text()
    except OSError:
        return ""
    found = re.search(rf"/{GENERATIONS}/([0-9a-f]{{16}})/", text)
    return found.group(1) if found else ""


def _prune(directory: Path, keep: set[str]) -> None:
    for child in (directory / GENERATIONS).iterdir():
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader sees the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One apply at a time: a PostgreSQL advisory lock across every Berth process using
    the database, and a file lock in the frontier's directory (SQLite has no advisory
    locks, and two databases may point at one directory in development).

    The advisory lock is a session lock, so it must be released even when the caller's
    transaction is in trouble: the work inside runs in a savepoint (a failing query
    rolls back to it, and the unlock can still run), and waiting is bounded."""
    with open(directory / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if connection.vendor != "postgresql":
                yield
                return
            _advisory_lock()
            try:
                with transaction.atomic():
                    yield
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_KEY])
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _advisory_lock() -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
            if cursor.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                raise FrontierBusyError(
                    f"another frontier apply held the lock for {LOCK_WAIT_SECONDS} s"
                )
            time.sleep(0.05)


class FrontierBusyError(RuntimeError):
    """Another apply held the lock too long (it may be stuck in a reload)."""


# --- status.json ----------------------------------------------------------------------


def record(directory: Path, reason: str, result: Result) -> None:
    """Write status.json: the last apply, and the last error (kept after later successes,
    so an admin sees what was refused last and when)."""
    previous = read_status(directory)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    status = {
        "at": now,
        "reason": reason,
        **asdict(result),
        "last_error": previous.get("last_error"),
        "last_ok_at": now if result.ok else previous.get("last_ok_at"),
    }
    if not result.ok:
        status["last_error"] = {"at": now, "reason": reason, "message": result.error}
    _write(Path(directory) / STATUS_FILE, json.dumps(status, indent=2) + "\n")


def read_status(directory: Path | None = None) -> dict[str, Any]:
    """status.json of the frontier (an empty dict before the first apply)."""
    path = Path(directory or settings.BERTH_FRONTIER_DIR) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
