"""Shell output flow control over websockets, against the real engine, through a real daphne.

Two figures, printed (a benchmark never asserts on time):

1. Throughput: the shell prints `--megabytes` MB as fast as it can (`yes` through `head
   -c`), then exits. A websocket client (the `websockets` library) on
   ws/containers/<id>/shell/ reads every frame and acknowledges the cumulative bytes
   every `--ack-every` bytes, like the browser does. MB/s from the first output byte to
   the `exit` message, best of `--rounds`.
2. Memory: a `--flood-seconds` flood (`yes`, endless) to a client that reads nothing
   after `ready`. The RSS of the daphne process is sampled every second; without flow
   control daphne buffers whatever the engine produces, with it the growth stays around
   the window.

Each figure is taken twice: with the window off (`BERTH_SHELL_WINDOW_BYTES=0`, the
behaviour before flow control) and on (the default 1 MiB, or `--window`), each over a
fresh daphne so one run's memory does not hide the other's.

Run from the repo root:  .venv/bin/python tests/perf/bench_shell.py [--megabytes 200]
Needs: the engine at /var/run/docker.sock, PostgreSQL and Redis on 127.0.0.1, the demo
images (deploy/build-images.sh). Everything it creates is removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_shell"
IMAGE = "berth-demo/worker:1.0"
LINE = "berth-flood " + "x" * 60  # ~72 bytes a line, a busy build log


def start_container(slug: str) -> str:
    return bench.docker(
        "run", "-d", "--name", f"berth-bench-shell-{bench.RUN_ID}",
        "--label", f"io.berth.tenant={slug}", "--label", "io.berth.managed=true",
        "--entrypoint", "/bin/sh", IMAGE, "-c", "sleep 86400",
    )  # fmt: skip


def make_rows(slug_prefix: str, engine_id: str):
    """Stack, Service and Container rows for the container, and an owner's token (a shell
    needs a member and a token that is not read-only)."""
    from apps.accounts.services import create_token
    from apps.deployments.models import Container, Service, Stack

    user, tenant, environment, host = bench.make_tenant(slug_prefix)
    stack = Stack.objects.create(tenant=tenant, environment=environment, name="bench-shell")
    service = Service.objects.create(stack=stack, name="flood", image=IMAGE)
    container = Container.objects.create(
        stack=stack, service=service, host=host, engine_id=engine_id, name="bench-shell",
        state="running",
    )  # fmt: skip
    _token, raw = create_token(actor=user, name="bench", tenant=tenant)
    return container, raw


def origin_of(url: str) -> str:
    """Channels' origin validator refuses a handshake without an Origin header."""
    return "http://" + url.split("://", 1)[1].split("/", 1)[0]


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return float("nan")


async def open_shell(url: str, **options):
    """A connected shell socket, after its `ready` message; echo off so the command's
    own text is not counted as output."""
    import websockets

    ws = await websockets.connect(
        url, max_size=None, origin=origin_of(url), proxy=None, compression=None, **options
    )
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout=20)
        if isinstance(raw, str) and json.loads(raw)["type"] == "ready":
            break
    await ws.send(b"stty -echo\r")
    await asyncio.sleep(0.5)
    return ws


async def flood_reader(url: str, megabytes: int, ack_every: int) -> dict:
    """Read and acknowledge a flood of `megabytes` MB; its bytes and seconds."""
    import websockets

    ws = await open_shell(url)
    try:
        while True:  # whatever the prompt printed
            try:
                await asyncio.wait_for(ws.recv(), timeout=0.3)
            except TimeoutError:
                break
        await ws.send(f"yes {LINE} | head -c {megabytes * 1_000_000}; exit\r".encode())
        received = acked = 0
        first = last = None
        exit_seen = False
        while not exit_seen:
            raw = await asyncio.wait_for(ws.recv(), timeout=30)
            if isinstance(raw, str):
                exit_seen = json.loads(raw)["type"] == "exit"
                continue
            last = time.perf_counter()
            first = first or last
            received += len(raw)
            if received - acked >= ack_every:
                acked = received
                # the server may have closed after `exit`, still queued here: read on
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(json.dumps({"type": "ack", "bytes": acked}))
        elapsed = (last or 0) - (first or 0)
        return {"bytes": received, "seconds": elapsed}
    finally:
        await ws.close()


async def stalled_reader(url: str, seconds: int, pid: int) -> dict:
    """An endless flood to a client that reads nothing; daphne's RSS every second."""
    # max_queue=1: the client library itself stops reading the TCP socket at once, as a
    # frozen browser tab would.
    ws = await open_shell(url, max_queue=1)
    samples: list[tuple[float, float]] = []
    try:
        await ws.send(f"yes {LINE}\r".encode())
        start = time.monotonic()
        for tick in range(seconds + 1):
            await asyncio.sleep(max(start + tick - time.monotonic(), 0))
            samples.append((time.monotonic() - start, rss_mib(pid)))
    finally:
        ws.transport.abort()  # no close handshake: the client stopped reading
    return {"samples": samples}


def measure(args, url: str, pid: int, label: str) -> dict:
    say(f"\n[{label}]")
    rates = []
    for _ in range(args.rounds):
        run = asyncio.run(flood_reader(url, args.megabytes, args.ack_every))
        rate = run["bytes"] / run["seconds"] / 1e6 if run["seconds"] else float("nan")
        rates.append(rate)
        say(f"   throughput: {run['bytes'] / 1e6:,.1f} MB in {run['seconds']:.2f} s = "
            f"{rate:,.1f} MB/s")  # fmt: skip
    before = rss_mib(pid)
    stalled = asyncio.run(stalled_reader(url, args.flood_seconds, pid))
    values = [mib for _at, mib in stalled["samples"]]
    growth = max(values) - before
    say(f"   RSS while a client reads nothing: before {before:.1f} MiB, "
        + ", ".join(f"{mib:.0f}" for mib in values) + " MiB (one a second)")  # fmt: skip
    say(f"   RSS growth over {args.flood_seconds} s: {growth:+.1f} MiB")
    return {"rate": max(rates), "growth": growth}


def run_server(settings, window: int, label: str):
    from tests.fixtures.daphne_server import Daphne

    log_path = Path(settings.BASE_DIR) / "var" / f"bench-shell-{label}-{bench.RUN_ID}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Daphne(
        f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "redis://127.0.0.1:6379/14",
        log_path,
        BERTH_SHELL_WINDOW_BYTES=str(window),
        BERTH_SHELL_IDLE_SECONDS="3600",
    ).start()
    bench.on_cleanup(server.stop)
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ack-every", type=int, default=64 * 1024)
    parser.add_argument("--flood-seconds", type=int, default=10)
    parser.add_argument("--window", type=int, default=1024 * 1024)
    parser.add_argument("--only", choices=["off", "on"], help="one configuration only")
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    bench.setup_django(DATABASE)
    from django.conf import settings

    slug_prefix = "bs"
    engine_id = start_container(f"{slug_prefix}{bench.RUN_ID}")
    bench.on_cleanup(lambda: bench.docker("rm", "-f", engine_id, check=False))
    container, token = make_rows(slug_prefix, engine_id)
    say(f"container {engine_id[:12]}; {args.megabytes} MB a flood, acks every "
        f"{args.ack_every} bytes")  # fmt: skip

    results = {}
    for label, window in (("off", 0), ("on", args.window)):
        if args.only and args.only != label:
            continue
        server = run_server(settings, window, label)
        ws_base = server.url.replace("http://", "ws://")
        url = f"{ws_base}/ws/containers/{container.pk}/shell/?token={token}"
        name = f"window {label}" + (f" ({window:,} bytes)" if window else "")
        results[label] = measure(args, url, server.pid, f"{name}, daphne pid {server.pid}")
        server.stop()

    if len(results) == 2:
        off, on = results["off"], results["on"]
        say(f"\nRESULT throughput: window off {off['rate']:,.1f} MB/s, on {on['rate']:,.1f} "
            f"MB/s (on/off = {on['rate'] / off['rate']:.2f}); RSS growth with a client "
            f"reading nothing for {args.flood_seconds} s: off {off['growth']:+.1f} MiB, "
            f"on {on['growth']:+.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
