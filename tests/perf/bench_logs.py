"""Log streaming over websockets against the real engine, through a real daphne.

Three figures, printed (a benchmark never asserts on time):

1. Throughput: a container prints N lines as fast as it can (`yes`), twice. The first
   flood is read by `docker logs -f` in a local process, the second by a websocket
   client (the `websockets` library) on ws/containers/<id>/logs/ over daphne on
   loopback, acknowledging every batch. Lines per second of each, and the ratio
   (goal: websocket >= 0.5 x raw).
2. Latency: the container prints a line every 50 ms carrying its own clock (µs, from
   busybox `adjtimex`); the client subtracts it from its arrival time. p50 and p95
   (goal: p95 < 100 ms).
3. Memory: a 60-second flood to a client that reads one message every 0.2 s. The RSS
   of the daphne process is sampled every 5 s; flat means the last sample is within
   25 MiB of the first one after warm-up (the server's buffer is bounded).

Run from the repo root:  .venv/bin/python tests/perf/bench_logs.py [--lines 300000]
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_logs"
IMAGE = "berth-demo/worker:1.0"
LINE = "flood-line " + "x" * 60  # ~72 bytes, a typical log line
CLOCK = "adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf \"%d.%06d\", s, u}'"

# The container waits for /tmp/goN before each phase (so every reader is attached first).
SCRIPT = f"""
wait_for() {{ while [ ! -f /tmp/$1 ]; do sleep 0.05; done; }}
wait_for go1; yes "{LINE} raw" | head -n "$N"
wait_for go2; yes "{LINE} ws" | head -n "$N"
wait_for go3; i=0
while [ $i -lt "$SAMPLES" ]; do echo "lat $i $({CLOCK})"; i=$((i+1)); sleep 0.05; done
wait_for go4; end=$(( $(date +%s) + $FLOOD )); n=0
while [ "$(date +%s)" -lt "$end" ]; do yes "{LINE} mem" | head -n 20000; done
sleep 86400
"""


def start_container(slug: str, lines: int, samples: int, flood: int) -> str:
    return bench.docker(
        "run", "-d", "--name", f"berth-bench-logs-{bench.RUN_ID}",
        "--label", f"io.berth.tenant={slug}", "--label", "io.berth.managed=true",
        "--log-driver", "json-file", "--log-opt", "max-size=100m", "--log-opt", "max-file=3",
        "-e", f"N={lines}", "-e", f"SAMPLES={samples}", "-e", f"FLOOD={flood}",
        "--entrypoint", "/bin/sh", IMAGE, "-c", SCRIPT,
    )  # fmt: skip


def go(container: str, phase: int) -> None:
    bench.docker("exec", container, "touch", f"/tmp/go{phase}")


def make_rows(slug_prefix: str, engine_id: str):
    """Stack, Service and Container rows for the container, and a token of its owner."""
    from apps.accounts.services import create_token
    from apps.deployments.models import Container, Service, Stack

    user, tenant, environment, host = bench.make_tenant(slug_prefix)
    stack = Stack.objects.create(tenant=tenant, environment=environment, name="bench-logs")
    service = Service.objects.create(stack=stack, name="flood", image=IMAGE)
    container = Container.objects.create(
        stack=stack, service=service, host=host, engine_id=engine_id, name="bench-flood",
        state="running",
    )  # fmt: skip
    _token, raw = create_token(actor=user, name="bench", tenant=tenant, read_only=True)
    return tenant, container, raw


# --- readers ------------------------------------------------------------------------------


def origin_of(url: str) -> str:
    """Channels' origin validator refuses a handshake without an Origin header."""
    return "http://" + url.split("://", 1)[1].split("/", 1)[0]


def raw_reader(container: str, marker: str, lines: int, phase: int) -> float:
    """`docker logs -f` read by this process: lines per second for `lines` marked lines."""
    proc = subprocess.Popen(
        ["docker", "-H", bench.DOCKER_HOST, "logs", "-f", "--tail", "0", container],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached before the flood starts
    go(container, phase)
    seen, first = 0, None
    needle = marker.encode()
    for raw in proc.stdout:
        if needle in raw:
            first = first or time.perf_counter()
            seen += 1
            if seen >= lines:
                break
    elapsed = time.perf_counter() - (first or time.perf_counter())
    proc.kill()
    proc.wait()
    return seen / elapsed if elapsed else float("nan")


async def ws_flood(url: str, container: str, marker: str, lines: int, phase: int) -> dict:
    import websockets

    async with websockets.connect(url, max_size=None, origin=origin_of(url)) as ws:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(go, container, phase)
        seen = dropped = 0
        first = last = None
        while seen + dropped < lines:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=10)
            except TimeoutError:
                break
            msg = json.loads(raw)
            if msg["type"] == "dropped":
                dropped += msg["count"]
            elif msg["type"] == "logs":
                await ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
                n = sum(1 for item in msg["lines"] if marker in item["line"])
                if n:
                    first = first or time.perf_counter()
                    last = time.perf_counter()
                    seen += n
        elapsed = (last or 0) - (first or 0)
        return {"lines": seen, "dropped": dropped, "rate": seen / elapsed if elapsed else 0}


async def ws_latency(url: str, container: str, samples: int) -> list[float]:
    import websockets

    delays: list[float] = []
    async with websockets.connect(url, max_size=None, origin=origin_of(url)) as ws:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(go, container, 3)
        while len(delays) < samples:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=10)
            except TimeoutError:
                break
            now = time.time()
            msg = json.loads(raw)
            if msg["type"] != "logs":
                continue
            await ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
            for item in msg["lines"]:
                parts = item["line"].split()
                if len(parts) == 3 and parts[0] == "lat":
                    delays.append((now - float(parts[2])) * 1000)
    return delays


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return float("nan")


async def ws_slow_reader(url: str, container: str, seconds: int, pid: int) -> dict:
    """Read one message every 0.2 s during the flood; sample the server's RSS every 5 s."""
    import websockets

    samples: list[tuple[float, float]] = []
    received = dropped = 0
    async with websockets.connect(url, max_size=None, origin=origin_of(url)) as ws:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(go, container, 4)
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < seconds + 2:
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - start, rss_mib(pid)))
                next_sample += 5
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=1)
            except TimeoutError:
                continue
            msg = json.loads(raw)
            if msg["type"] == "logs":
                received += len(msg["lines"])
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"type": "ack", "seq": msg["seq"]}))
            elif msg["type"] == "dropped":
                dropped += msg["count"]
    return {"samples": samples, "received": received, "dropped": dropped}


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--flood-seconds", type=int, default=60)
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    bench.setup_django(DATABASE)
    from django.conf import settings

    from tests.fixtures.daphne_server import Daphne

    tenant, container_row, token = None, None, None
    slug_prefix = "bl"
    engine_id = start_container(f"{slug_prefix}{bench.RUN_ID}", args.lines, args.samples,
                                args.flood_seconds)  # fmt: skip
    bench.on_cleanup(lambda: bench.docker("rm", "-f", engine_id, check=False))
    tenant, container_row, token = make_rows(slug_prefix, engine_id)
    log_path = Path(settings.BASE_DIR) / "var" / f"bench-logs-daphne-{bench.RUN_ID}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Daphne(
        f"postgres://postgres@127.0.0.1:5432/{DATABASE}", "redis://127.0.0.1:6379/14", log_path
    ).start()
    bench.on_cleanup(server.stop)
    ws_base = server.url.replace("http://", "ws://")
    url = f"{ws_base}/ws/containers/{container_row.pk}/logs/?tail=0&follow=1&token={token}"
    say(f"daphne pid {server.pid} at {server.url}; container {engine_id[:12]}")

    say(f"\n1. Throughput, {args.lines:,} lines of {len(LINE) + 4} bytes")
    raw_rate = raw_reader(engine_id, f"{LINE} raw", args.lines, 1)
    say(f"   docker logs -f (local process): {raw_rate:,.0f} lines/s")
    cpu_before = cpu_seconds(server.pid)
    ws = asyncio.run(ws_flood(url, engine_id, f"{LINE} ws", args.lines, 2))
    cpu = cpu_seconds(server.pid) - cpu_before
    say(f"   websocket client via daphne:    {ws['rate']:,.0f} lines/s "
        f"({ws['lines']:,} delivered, {ws['dropped']:,} dropped)")  # fmt: skip
    flood_seconds = ws["lines"] / ws["rate"] if ws["rate"] else float("nan")
    say(f"   daphne CPU: {cpu:.1f} s over a {flood_seconds:.1f} s flood (+1 s idle before)")
    ratio = ws["rate"] / raw_rate if raw_rate else float("nan")
    say(
        f"   ratio websocket/raw: {ratio:.2f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
    )

    say(f"\n2. Latency, {args.samples} lines 50 ms apart, container clock -> client arrival")
    delays = asyncio.run(ws_latency(url, engine_id, args.samples))
    p50, p95 = bench.median(delays), bench.p95(delays)
    say(f"   {len(delays)} samples: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(delays):.1f} ms "
        f"(goal p95 < 100 ms: {'met' if p95 < 100 else 'NOT met'})")  # fmt: skip

    say(f"\n3. Server memory, {args.flood_seconds} s flood to a client reading every 0.2 s")
    say(f"   daphne RSS before: {rss_mib(server.pid):.1f} MiB")
    slow = asyncio.run(ws_slow_reader(url, engine_id, args.flood_seconds, server.pid))
    for at, mib in slow["samples"]:
        say(f"   t={at:5.1f}s  RSS {mib:7.1f} MiB")
    values = [mib for _at, mib in slow["samples"]]
    warm = values[1] if len(values) > 1 else values[0]
    growth = values[-1] - warm
    flat = growth < 25
    say(f"   received {slow['received']:,} lines, told of {slow['dropped']:,} dropped; "
        f"growth after warm-up {growth:+.1f} MiB: {'flat' if flat else 'NOT flat'}")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
