"""Many live streams on one daphne: memory per socket and the delay of an event.

`--sockets` websockets (default 200: half stack events, half container logs) are opened
at once on one real daphne process (free loopback port, Redis channel layer on
`--redis-db`), by `--users` users with API tokens spread over `--tenants` tenants, each
with a stack and a running container (`berth-demo/worker:1.0` running a small script).
It prints, without asserting anything:

0. Handshake cost: daphne's CPU per handshake of each kind, `--sequential` sockets
   opened one after another (no contention), then closed.
1. Opening: how long until every socket is accepted (events: until `caught_up`), and
   how many were refused (close code).
2. Cost at rest: daphne's RSS, threads and file descriptors before and after (and per
   socket), its CPU and the database's transactions per second while the sockets sit
   idle for `--idle` seconds (what every open tab costs when nothing happens).
3. Events: `--events` stack events recorded through `apps.activity.services.
   record_event` in this process (the service layer every operation uses), one every
   `--gap` seconds, round-robin over the stacks; the clock starts just before the
   transaction commits (the event is broadcast on commit). For every (socket, event)
   pair the socket should see: p50, p95, max delay to the client, and how many never came.
4. Log lines: each container prints `--lines` lines `--gap` apart carrying its own clock
   (busybox `adjtimex`); the delay from `echo` in the container to each log socket.

The clients run in this process (one event loop, `websockets`), so their own parsing is
part of the delay, as a browser's would be.

Run from the repo root:
    .venv/bin/python tests/perf/bench_live_streams.py [--sockets 200] [--tenants 10]
Needs: the engine at /var/run/docker.sock, PostgreSQL and Redis on 127.0.0.1, the demo
images (deploy/build-images.sh). Everything it creates is removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_live_e"
IMAGE = "berth-demo/worker:1.0"
CLOCK = "adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf \"%d.%06d\", s, u}'"
# Waits for /tmp/go (every log socket attached first), then prints timestamped lines.
SCRIPT = f"""
while [ ! -f /tmp/go ]; do sleep 0.05; done
i=0
while [ $i -lt "$LINES" ]; do echo "lat $i $({CLOCK})"; i=$((i+1)); sleep "$GAP"; done
sleep 86400
"""


@dataclass
class Target:
    """One tenant's stack and container, and the users (tokens) that watch them."""

    tenant: object
    stack_id: int
    container_pk: int
    engine_id: str
    tokens: list[str] = field(default_factory=list)


@dataclass
class Sock:
    kind: str  # "events" or "logs"
    target: int
    url: str
    ws: object = None
    opened: float = 0.0
    ready: float = 0.0
    close_code: int | None = None
    error: str = ""
    events: dict[int, float] = field(default_factory=dict)
    lines: list[float] = field(default_factory=list)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)


# --- server-side figures --------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    rows = dict(row.split(":", 1) for row in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        "rss": int(rows["VmRSS"].split()[0]) / 1024,
        "threads": int(rows["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_transactions() -> int:
    return int(
        bench.psql(
            f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{DATABASE}'"
        )  # fmt: skip
    )


def show(label: str, status: dict[str, float]) -> None:
    say(f"   {label:<28} RSS {status['rss']:7.1f} MiB, {status['threads']:3.0f} threads, "
        f"{status['fds']:4.0f} fds")  # fmt: skip


# --- setup ------------------------------------------------------------------------------------


def start_container(slug: str, lines: int, gap: float, index: int) -> str:
    return bench.docker(
        "run", "-d", "--name", f"berth-bench-live-{bench.RUN_ID}-{index}",
        "--label", f"io.berth.tenant={slug}", "--label", "io.berth.managed=true",
        "--label", f"io.berth.bench={bench.RUN_ID}", "--memory", "16m", "--network", "none",
        "-e", f"LINES={lines}", "-e", f"GAP={gap}",
        "--entrypoint", "/bin/sh", IMAGE, "-c", SCRIPT,
    )  # fmt: skip


def make_targets(tenants: int, users: int, lines: int, gap: float) -> list[Target]:
    """`tenants` tenants with a stack and a running container each; `users` users, each
    a viewer of one tenant (round-robin) with a read-only API token for it."""
    import uuid

    from django.contrib.auth import get_user_model

    from apps.accounts.services import create_token
    from apps.core.roles import Role
    from apps.deployments.models import Container, Service, Stack
    from apps.hosts.services import ensure_local_host
    from apps.tenants import services as tenant_services
    from apps.tenants.models import Membership

    host, _ = ensure_local_host()
    owner = get_user_model().objects.create_user(
        username=f"bench-owner-{bench.RUN_ID}", password=uuid.uuid4().hex
    )
    targets = []
    for index in range(tenants):
        slug = f"bv{index}x{bench.RUN_ID}"
        bench.on_cleanup(lambda slug=slug: bench.remove_labelled(f"io.berth.tenant={slug}"))
        tenant = tenant_services.create_tenant(actor=owner, slug=slug, name=f"Live {slug}")
        environment = tenant.environments.order_by("pk").first()
        engine_id = start_container(slug, lines, gap, index)
        stack = Stack.objects.create(tenant=tenant, environment=environment, name="live")
        service = Service.objects.create(stack=stack, name="talker", image=IMAGE)
        container = Container.objects.create(
            stack=stack, service=service, host=host, engine_id=engine_id,
            name=f"live-talker-{index}", state="running",
        )  # fmt: skip
        targets.append(Target(tenant, stack.pk, container.pk, engine_id))
    for index in range(users):
        target = targets[index % tenants]
        user = get_user_model().objects.create_user(
            username=f"bench-viewer-{index}-{bench.RUN_ID}", password=uuid.uuid4().hex
        )
        Membership.objects.create(tenant=target.tenant, user=user, role=Role.VIEWER)
        _token, raw = create_token(actor=user, name="live", tenant=target.tenant, read_only=True)
        target.tokens.append(raw)
    return targets


def plan_sockets(
    targets: list[Target], sockets: int, ws_base: str, logs: float = 0.5
) -> list[Sock]:
    """`logs` of them log sockets, the rest events; each kind dealt round-robin over the
    users (so every user gets its share of both, within the per-user bounds), each
    user's sockets on its own tenant."""
    pairs = [(t, token) for t in targets for token in t.tokens]
    plan: list[Sock] = []
    dealt = {"events": 0, "logs": 0}
    for index in range(sockets):
        kind = "events" if int((index + 1) * logs) == int(index * logs) else "logs"
        target, token = pairs[dealt[kind] % len(pairs)]
        dealt[kind] += 1
        number = targets.index(target)
        if kind == "events":
            url = f"{ws_base}/ws/stacks/{target.stack_id}/events/?token={token}"
        else:
            url = (f"{ws_base}/ws/containers/{target.container_pk}/logs/?tail=0&follow=1"
                   f"&timestamps=0&token={token}")  # fmt: skip
        plan.append(Sock(kind, number, url))
    return plan


# --- clients ------------------------------------------------------------------------------------


def origin_of(url: str) -> str:
    return "http://" + url.split("://", 1)[1].split("/", 1)[0]


async def run_socket(sock: Sock, started: float) -> None:
    import websockets

    try:
        sock.ws = await websockets.connect(
            sock.url, max_size=None, origin=origin_of(sock.url), open_timeout=60,
            ping_interval=None,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a refused socket is a figure, not a crash
        sock.error = f"{type(exc).__name__}: {exc}"
        sock.caught_up.set()
        return
    sock.opened = time.monotonic() - started
    if sock.kind == "logs":
        sock.ready = sock.opened
    try:
        async for raw in sock.ws:
            now = time.time()
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "event":
                sock.events[msg["event"]["id"]] = now
            elif kind == "caught_up":
                sock.ready = time.monotonic() - started
                sock.caught_up.set()
            elif kind == "logs":
                await sock.ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
                for item in msg["lines"]:
                    parts = item["line"].split()
                    if len(parts) == 3 and parts[0] == "lat":
                        sock.lines.append(now - float(parts[2]))
            elif kind == "error":
                sock.error = msg.get("message", "")
    except Exception as exc:  # noqa: BLE001
        sock.error = sock.error or f"{type(exc).__name__}: {exc}"
    sock.close_code = sock.ws.close_code
    sock.caught_up.set()


async def wait_all(socks: list[Sock], timeout: float) -> None:
    events = [s.caught_up.wait() for s in socks if s.kind == "events"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.ws is not None or s.error for s in socks):
            break
        await asyncio.sleep(0.1)
    if events:
        await asyncio.wait_for(asyncio.gather(*events), max(deadline - time.monotonic(), 1))


def record_events(targets: list[Target], count: int, gap: float) -> dict[int, tuple[int, float]]:
    """In a thread: `count` events through the service layer; id -> (target, commit time)."""
    from django.db import connection, transaction

    from apps.activity.services import record_event
    from apps.deployments.models import Stack

    stacks = [Stack.objects.get(pk=t.stack_id) for t in targets]
    sent: dict[int, tuple[int, float]] = {}
    for index in range(count):
        number = index % len(targets)
        with transaction.atomic():
            event = record_event(
                "stack.bench", tenant=targets[number].tenant, obj=stacks[number],
                message=f"bench event {index}",
            )  # fmt: skip
            stamp = time.time()
        sent[event.pk] = (number, stamp)
        time.sleep(gap)
    connection.close()
    return sent


def spread(label: str, delays_ms: list[float], expected: int) -> str:
    if not delays_ms:
        return f"   {label}: nothing received of {expected}"
    return (f"   {label}: {len(delays_ms)}/{expected} received, p50 {bench.median(delays_ms):.1f} "
            f"ms, p95 {bench.p95(delays_ms):.1f} ms, max {max(delays_ms):.1f} ms")  # fmt: skip


async def handshake_cost(targets: list[Target], ws_base: str, pid: int, count: int) -> None:
    """Daphne's CPU per handshake, without contention: `count` sockets of each kind
    opened one after another (each until ready: events `caught_up`, logs accepted and
    a moment for its stream), kept open, then all closed."""
    say(f"\n0. Handshake cost: {count} sockets of each kind, one after another")
    for kind, share in (("events", 0.0), ("logs", 1.0)):
        socks = plan_sockets(targets, count, ws_base, share)
        tasks = []
        cpu0, started = cpu_seconds(pid), time.monotonic()
        for sock in socks:
            tasks.append(asyncio.ensure_future(run_socket(sock, time.monotonic())))
            if kind == "events":
                await sock.caught_up.wait()
            else:
                while sock.ws is None and not sock.error:
                    await asyncio.sleep(0.002)
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - started
        failed = sum(1 for s in socks if s.error or s.close_code is not None)
        threads = proc_status(pid)["threads"]
        say(f"   {kind:<6}: daphne CPU {cpu * 1000 / count:5.1f} ms per handshake "
            f"({wall * 1000 / count:.0f} ms wall each; {failed} failed; daphne "
            f"{threads:.0f} threads with them open)")  # fmt: skip
        for sock in socks:
            if sock.ws is not None:
                await sock.ws.close()
        await asyncio.wait(tasks, timeout=30)
        await asyncio.sleep(1)


async def scenario(args, targets: list[Target], server) -> None:
    pid = server.pid
    ws_base = server.url.replace("http://", "ws://")
    socks = plan_sockets(targets, args.sockets, ws_base, args.logs)
    tasks: list[asyncio.Task] = []

    # warm-up: one socket of each kind, opened and closed (imports, first connections)
    warm = plan_sockets(targets, 2, ws_base)
    warm_tasks = [asyncio.ensure_future(run_socket(s, time.monotonic())) for s in warm]
    await wait_all(warm, 30)
    for s in warm:
        if s.ws is not None:
            await s.ws.close()
    await asyncio.gather(*warm_tasks)
    await asyncio.sleep(2)
    if args.sequential:
        await handshake_cost(targets, ws_base, pid, args.sequential)
    before = proc_status(pid)
    say(f"\n1. Opening {len(socks)} sockets at once "
        f"({sum(s.kind == 'events' for s in socks)} events, "
        f"{sum(s.kind == 'logs' for s in socks)} logs; {len(targets)} tenants, "
        f"{sum(len(t.tokens) for t in targets)} users)")  # fmt: skip
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    tasks = [asyncio.ensure_future(run_socket(s, started)) for s in socks]
    try:
        await wait_all(socks, 120)
    except TimeoutError:
        say("   (not every events socket was caught up within 120 s)")
    took = time.monotonic() - started
    burst_cpu = cpu_seconds(pid) - cpu0
    say(f"   all answered in {took:.2f} s (daphne CPU {burst_cpu:.1f} s, "
        f"{burst_cpu * 1000 / len(socks):.1f} ms per socket)")  # fmt: skip
    ready = [s.ready for s in socks if s.ready]
    if ready:
        say(f"   ready (events: caught_up; logs: accepted): p50 {bench.median(ready):.2f} s, "
            f"p95 {bench.p95(ready):.2f} s, max {max(ready):.2f} s")  # fmt: skip
    await asyncio.sleep(3)
    refused = [s for s in socks if s.close_code is not None or s.error]
    codes: dict[str, int] = {}
    for s in refused:
        key = f"{s.kind} {s.close_code} {s.error[:70]}"
        codes[key] = codes.get(key, 0) + 1
    say(f"   open: {len(socks) - len(refused)}, refused or closed: {len(refused)}")
    for key, n in sorted(codes.items()):
        say(f"     {n} x {key}")

    say(f"\n2. Cost at rest ({len(socks) - len(refused)} open sockets)")
    after = proc_status(pid)
    show("daphne before", before)
    show("daphne with the sockets", after)
    open_count = max(len(socks) - len(refused), 1)
    say(f"   per socket: {(after['rss'] - before['rss']) * 1024 / open_count:.0f} KiB RSS, "
        f"{(after['threads'] - before['threads']) / open_count:.2f} threads, "
        f"{(after['fds'] - before['fds']) / open_count:.2f} fds")  # fmt: skip
    cpu0, tx0 = cpu_seconds(pid), db_transactions()
    await asyncio.sleep(args.idle)
    cpu, tx = cpu_seconds(pid) - cpu0, db_transactions() - tx0
    say(f"   idle {args.idle} s: daphne CPU {cpu / args.idle * 100:.1f} % of a core, "
        f"database {tx / args.idle:.0f} transactions/s")  # fmt: skip

    say(f"\n3. Stack events: {args.events}, one every {args.gap} s, commit -> client")
    cpu0 = cpu_seconds(pid)
    sent = await asyncio.to_thread(record_events, targets, args.events, args.gap)
    await asyncio.sleep(3)
    delays, expected = [], 0
    for s in socks:
        if s.kind != "events" or s.close_code is not None or s.error:
            continue
        for event_id, (number, stamp) in sent.items():
            if number != s.target:
                continue
            expected += 1
            if event_id in s.events:
                delays.append((s.events[event_id] - stamp) * 1000)
    say(spread("delivered", delays, expected))
    say(f"   daphne CPU during the events: {cpu_seconds(pid) - cpu0:.1f} s")

    say(f"\n4. Log lines: {args.lines} per container, {args.gap} s apart, echo -> client")
    cpu0 = cpu_seconds(pid)
    await asyncio.to_thread(
        lambda: [bench.docker("exec", t.engine_id, "touch", "/tmp/go") for t in targets]
    )
    await asyncio.sleep(args.lines * args.gap + 3)
    log_socks = [s for s in socks if s.kind == "logs" and s.close_code is None and not s.error]
    line_delays = [d * 1000 for s in log_socks for d in s.lines]
    say(spread("delivered", line_delays, len(log_socks) * args.lines))
    say(f"   daphne CPU during the lines: {cpu_seconds(pid) - cpu0:.1f} s")

    late: dict[str, int] = {}
    for s in socks:
        if (s.close_code is not None or s.error) and s not in refused:
            key = f"{s.kind} {s.close_code} {s.error[:70]}"
            late[key] = late.get(key, 0) + 1
    for key, n in sorted(late.items()):
        say(f"   closed during the run: {n} x {key}")
    end = proc_status(pid)
    show("daphne after the traffic", end)
    for s in socks:
        if s.ws is not None:
            await s.ws.close()
    await asyncio.wait(tasks, timeout=30)
    await asyncio.sleep(3)
    show("daphne after closing all", proc_status(pid))
    say(f"\nRESULT {len(socks) - len(refused)}/{len(socks)} sockets open, "
        f"burst CPU {burst_cpu * 1000 / len(socks):.1f} ms per socket, "
        f"{after['threads']:.0f} daphne threads with them, "
        f"{(after['rss'] - before['rss']) * 1024 / open_count:.0f} KiB per socket, "
        f"idle CPU {cpu / args.idle * 100:.1f} %, {tx / args.idle:.0f} db tx/s; "
        f"event p95 {bench.p95(delays):.1f} ms ({len(delays)}/{expected}), "
        f"log line p95 {bench.p95(line_delays):.1f} ms "
        f"({len(line_delays)}/{len(log_socks) * args.lines})")  # fmt: skip


def main() -> None:
    global DATABASE  # noqa: PLW0603 - the figures' queries read it
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--logs", type=float, default=0.5, help="share of log sockets")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.2)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--redis-db", type=int, default=7)
    parser.add_argument("--database", default="berth_bench_live_e")
    parser.add_argument(
        "--sequential", type=int, default=40,
        help="sockets of each kind opened one at a time first, for the CPU per handshake",
    )  # fmt: skip
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for daphne (e.g. BERTH_LIVE_STREAM_THREADS=128)",
    )  # fmt: skip
    args = parser.parse_args()
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    os.environ["REDIS_URL"] = redis_url

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    DATABASE = args.database
    bench.setup_django(DATABASE)
    from django.conf import settings

    from tests.fixtures.daphne_server import Daphne

    targets = make_targets(args.tenants, args.users, args.lines, args.gap)
    extra = dict(item.split("=", 1) for item in args.server_env)
    log_path = Path(settings.BASE_DIR) / "var" / f"bench-live-daphne-{bench.RUN_ID}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Daphne(
        f"postgres://postgres@127.0.0.1:5432/{DATABASE}", redis_url, log_path,
        DJANGO_DEBUG="false", DJANGO_SECURE_SSL_REDIRECT="false", **extra,
    ).start()  # fmt: skip
    bench.on_cleanup(server.stop)
    say(f"daphne pid {server.pid} at {server.url}, Redis db {args.redis_db}"
        f"{', ' + ' '.join(args.server_env) if args.server_env else ''}; "
        f"{len(targets)} containers ({threading.active_count()} bench threads)")  # fmt: skip
    asyncio.run(scenario(args, targets, server))
    subprocess.run(["redis-cli", "-n", str(args.redis_db), "flushdb"], capture_output=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
