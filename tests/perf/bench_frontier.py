"""The frontier's cost: requests through HAProxy against straight to the container, and
the time to render, check and reload a configuration of 500 routes.

1. Throughput and latency. One `berth-demo/web:1.0` container, published on a free
   127.0.0.1 port, and a route `bench.localhost` to it on a frontier of the benchmark's
   own (HAProxy master-worker in a temporary folder, free ports, as `make run` starts
   it). The same client (`--concurrency` threads, a new connection per request, as the
   demo's busybox httpd closes each one anyway) sends `--requests` GETs to each target,
   the container first, then the frontier, for two paths: `/` (the demo's CGI page) and
   `/no-such-file` (busybox's own 404, no CGI: the cheapest answer the app has, so the
   proxy's share shows best). Prints requests/s, p50 and p99, and frontier/direct.
2. 500 routes. 500 Route rows (host names r<N>.bench.localhost, one container row each
   on a loopback address where nothing listens: HAProxy's checks are refused at once and
   cost nothing), then `--rounds` applies each changing one route: the median time of
   the whole `apply()` (database snapshot, render, `haproxy -c`, install, reload and the
   wait for the new worker) and of its parts measured apart.

Run from the repository root:
  .venv/bin/python tests/perf/bench_frontier.py [--requests 2000] [--concurrency 8] \
      [--routes 500] [--rounds 5]
Needs the engine, PostgreSQL on 127.0.0.1 (database berth_bench_frontier, dropped at the
end) and Debian's haproxy. The last lines start with RESULT.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

DATABASE = "berth_bench_frontier"
IMAGE = "berth-demo/web:1.0"
HOST = "bench.localhost"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-int(pct * 10) * len(ordered) // 1000))
    return ordered[rank - 1]


def load(port: int, path: str, requests: int, concurrency: int, host: str) -> dict:
    """`requests` GETs from `concurrency` threads, a fresh connection each."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        mine, failed = [], []
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path, headers={"Host": f"{host}:{port}"})
                response = conn.getresponse()
                response.read()
                if response.status >= 500:
                    failed.append(str(response.status))
            except (OSError, http.client.HTTPException) as exc:
                failed.append(repr(exc))
            finally:
                conn.close()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "errors": len(errors),
    }


def start_container(slug: str) -> tuple[str, str, int]:
    """A demo web container published on a free loopback port: (id, address, port)."""
    port = free_port()
    engine_id = bench.docker(
        "run", "-d", "--label", f"io.berth.tenant={slug}", "-p", f"127.0.0.1:{port}:8080", IMAGE
    )
    address = bench.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", engine_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return engine_id, address, port
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise SystemExit("the demo container did not answer")


def rows(tenant, environment, host, name: str, routes: list[tuple[str, int]], address: str):
    """A stack `name` whose service `web` has one running container at `address` and a
    route per (host name, port)."""
    from apps.deployments.models import Container, Route, Service, Stack

    stack = Stack.objects.create(tenant=tenant, environment=environment, name=name)
    service = Service.objects.create(stack=stack, name="web", image=IMAGE)
    Container.objects.create(
        stack=stack,
        service=service,
        host=host,
        engine_id=f"{name}-{bench.RUN_ID}",
        name=f"{name}-web-1",
        state="running",
        health="healthy",
        address=address,
    )
    Route.objects.bulk_create(
        Route(tenant=tenant, stack=stack, service=service, hostname=h, port=p) for h, p in routes
    )
    return stack


def throughput(args, frontier_port: int, direct_port: int) -> None:
    for path in ("/", "/no-such-file"):
        load(direct_port, path, 100, args.concurrency, HOST)  # warm both
        load(frontier_port, path, 100, args.concurrency, HOST)
        direct = load(direct_port, path, args.requests, args.concurrency, HOST)
        through = load(frontier_port, path, args.requests, args.concurrency, HOST)
        for label, figures in (("direct  ", direct), ("frontier", through)):
            bench.say(
                f"  {path:14} {label} {figures['rps']:8.0f} req/s  p50 {figures['p50']:6.1f} ms"
                f"  p99 {figures['p99']:6.1f} ms  errors {figures['errors']}"
            )
        bench.say(
            f"RESULT {path} frontier/direct: req/s {through['rps'] / direct['rps']:.2f}, "
            f"p99 {through['p99'] / direct['p99']:.2f} ({args.requests} requests, "
            f"{args.concurrency} clients)"
        )


def many_routes(args, tenant, environment, host, directory: Path) -> None:
    from apps.deployments.models import Route
    from apps.traffic import frontier, process

    closed = free_port()  # nothing listens there: checks are refused at once
    names = [(f"r{i}.bench.localhost", closed) for i in range(args.routes)]
    rows(tenant, environment, host, "many", names, "127.0.0.2")
    first = frontier.apply("bench: 500 routes")
    assert first.ok, first.error
    bench.say(
        f"  {first.routes} routes rendered, {len(frontier.render(frontier.snapshot()).config)}"
        f" bytes of configuration, first apply {first.seconds * 1000:.0f} ms"
    )
    totals, snaps, renders, checks, reloads = [], [], [], [], []
    one = Route.objects.filter(hostname="r0.bench.localhost")
    for round_ in range(args.rounds):
        one.update(sticky=round_ % 2 == 0)
        started = time.perf_counter()
        result = frontier.apply("bench")
        totals.append(time.perf_counter() - started)
        assert result.ok and result.reloaded, result.error
        started = time.perf_counter()
        snap = frontier.snapshot()
        snaps.append(time.perf_counter() - started)
        started = time.perf_counter()
        frontier.render(snap)
        renders.append(time.perf_counter() - started)
        started = time.perf_counter()
        process.check(directory / process.CONFIG)
        checks.append(time.perf_counter() - started)
        started = time.perf_counter()
        process.reload(directory)
        reloads.append(time.perf_counter() - started)
    ms = {
        k: bench.median(v) * 1000
        for k, v in (
            ("apply", totals),
            ("snapshot", snaps),
            ("render", renders),
            ("check", checks),
            ("reload", reloads),
        )
    }
    bench.say(
        f"  parts (median of {args.rounds}): snapshot {ms['snapshot']:.0f} ms, render "
        f"{ms['render']:.0f} ms, haproxy -c {ms['check']:.0f} ms, reload {ms['reload']:.0f} ms"
    )
    bench.say(
        f"RESULT {args.routes} routes: render + check + reload (apply) median "
        f"{ms['apply']:.0f} ms over {args.rounds} rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    directory = Path(tempfile.mkdtemp(prefix="berth-bench-frontier-"))
    bench.on_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    frontier_port = free_port()
    os.environ["BERTH_FRONTIER_DIR"] = str(directory)
    os.environ["BERTH_FRONTIER_ADDR"] = f"127.0.0.1:{frontier_port}"
    os.environ["BERTH_FRONTIER_TLS_ADDR"] = f"127.0.0.1:{free_port()}"
    bench.setup_django(DATABASE)

    from apps.traffic import frontier, process

    _user, tenant, environment, host = bench.make_tenant("bfr")
    _engine_id, address, direct_port = start_container(tenant.slug)
    rows(tenant, environment, host, "web", [(HOST, 8080)], address)
    result = frontier.apply("bench")
    assert result.ok, result.error
    process.start(directory, (f"127.0.0.1:{frontier_port}",))
    bench.on_cleanup(lambda: process.stop(directory))
    bench.say(f"frontier on 127.0.0.1:{frontier_port}, container published on {direct_port}")

    throughput(args, frontier_port, direct_port)
    many_routes(args, tenant, environment, host, directory)


if __name__ == "__main__":
    main()
