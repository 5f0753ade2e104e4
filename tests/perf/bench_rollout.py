"""Requests lost during rollouts, and what an upgrade adds to the p99 latency.

A 4-replica `berth-demo/web` service behind a route `rollout.bench.localhost` on a
frontier of the benchmark's own (HAProxy master-worker in a temporary folder, free
ports, as `make run` starts it), under a steady client load (`--concurrency` threads, a
fresh connection per request, through the frontier with the route's Host header):

1. steady state for `--steady` seconds: requests/s, p50, p99;
2. a rolling upgrade 1.0 -> 1.1 (batch 1, start-first, the drain protocol) by the real
   reconciler: requests sent, lost (any error or non-200), p99 during it;
3. a canary back to 1.0 (strategy canary, 25 %), then promoted (the service function,
   its reconcile run in the same process): requests lost while the canary starts and
   while it is promoted, p99 during the promote.

The goal is 0 lost. Run from the repository root:
  .venv/bin/python tests/perf/bench_rollout.py [--concurrency 4] [--steady 5]
Needs the engine, PostgreSQL and Redis on 127.0.0.1 (database berth_bench_rollout,
dropped at the end; Redis db 12 for the tenant worker slots) and Debian's haproxy. The
last lines start with RESULT.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

DATABASE = "berth_bench_rollout"
HOST = "rollout.bench.localhost"
IMAGES = ("berth-demo/web:1.0", "berth-demo/web:1.1")
VERSION = re.compile(r" - web (1\.\d)</title>")
COMPOSE = """
services:
  web:
    image: berth-demo/web:${TAG}
    stop_grace_period: 2s
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 4
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-int(pct * 10) * len(ordered) // 1000))
    return ordered[rank - 1]


class Load:
    """`concurrency` threads sending GET / through the frontier until stopped."""

    def __init__(self, port: int, concurrency: int):
        self.port, self.concurrency = port, concurrency
        self.latencies: list[float] = []
        self.answers: Counter = Counter()
        self.lost: Counter = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(concurrency)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/", headers={"Host": f"{HOST}:{self.port}"})
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                match = VERSION.search(body)
                answer = match.group(1) if response.status == 200 and match else None
                failure = None if answer else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                answer, failure = None, type(exc).__name__
            finally:
                conn.close()
            elapsed = time.perf_counter() - started
            with self._lock:
                self.latencies.append(elapsed)
                if failure:
                    self.lost[failure] += 1
                else:
                    self.answers[answer] += 1

    def __enter__(self) -> Load:
        self.started = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.seconds = time.perf_counter() - self.started

    def figures(self) -> str:
        return (
            f"{len(self.latencies)} requests ({len(self.latencies) / self.seconds:.0f}/s), "
            f"lost {sum(self.lost.values())} {dict(self.lost) or ''}, "
            f"p50 {percentile(self.latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(self.latencies, 99) * 1000:.1f} ms, answers {dict(self.answers)}"
        )


def revision(stack, environment, tag: str, upgrade: dict):
    """The next Revision of `stack`: its spec rendered as a template with a route would."""
    from apps.deployments.models import Revision
    from apps.deployments.spec import berth_spec, build_spec, project_from_spec

    spec = build_spec(COMPOSE, {"TAG": tag}, environment)
    routes = [{"hostname": HOST, "path": "/", "port": 8080}]
    settings = {"web": {"routes": routes, "upgrade": upgrade}}
    spec["berth"] = berth_spec(project_from_spec(spec), settings, {"TAG": tag})
    number = (stack.revisions.order_by("-number").values_list("number", flat=True).first()) or 0
    made = Revision.objects.create(stack=stack, number=number + 1, spec=spec)
    stack.current_revision = made
    stack.save(update_fields=["current_revision"])
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--steady", type=float, default=5.0)
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images(IMAGES)
    directory = Path(tempfile.mkdtemp(prefix="berth-bench-rollout-"))
    bench.on_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    port = free_port()
    os.environ["BERTH_FRONTIER_DIR"] = str(directory)
    os.environ["BERTH_FRONTIER_ADDR"] = f"127.0.0.1:{port}"
    os.environ["BERTH_FRONTIER_TLS_ADDR"] = f"127.0.0.1:{free_port()}"
    # promote() queues the reconcile: run it here, in this process, when it commits.
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/9"
    # The demo images may also be in a running Berth's registry (make run publishes
    # them): with that registry's address this run would rightly refuse the engine's
    # copy as a private image it knows nothing of. Its own, unused address instead.
    os.environ["BERTH_REGISTRY_ADDR"] = f"127.0.0.1:{free_port()}"
    bench.setup_django(DATABASE)

    from apps.deployments import reconciler
    from apps.deployments import rollout as rollouts
    from apps.deployments.models import Rollout, Route, Service, Stack
    from apps.traffic import frontier, process

    user, tenant, environment, _host = bench.make_tenant("bro")
    empty = frontier.Snapshot(
        directory=str(directory), addr=f"127.0.0.1:{port}", tls_addr=f"127.0.0.1:{free_port()}"
    )
    assert frontier.install(directory, frontier.render(empty)).ok
    process.start(directory, (f"127.0.0.1:{port}",))
    bench.on_cleanup(lambda: process.stop(directory))

    stack = Stack.objects.create(tenant=tenant, environment=environment, name="web")
    revision(stack, environment, "1.0", {"batch_size": 1})
    reconciler.reconcile_stack(stack.pk)
    service = Service.objects.get(stack=stack, name="web")
    Route.objects.create(tenant=tenant, stack=stack, service=service, hostname=HOST, port=8080)
    assert frontier.apply("bench route").ok
    bench.say(f"frontier on 127.0.0.1:{port}, 4 replicas of berth-demo/web:1.0 behind {HOST}")

    with Load(port, args.concurrency) as steady:
        time.sleep(args.steady)
    bench.say(f"  steady state:        {steady.figures()}")

    revision(stack, environment, "1.1", {"batch_size": 1})
    with Load(port, args.concurrency) as rolling:
        started = time.perf_counter()
        reconciler.reconcile_stack(stack.pk)
        took = time.perf_counter() - started
    bench.say(f"  rolling upgrade ({took:.1f} s): {rolling.figures()}")

    canary = {"strategy": "canary", "batch_size": 1, "canary_weight": 25}
    revision(stack, environment, "1.0", canary)
    with Load(port, args.concurrency) as starting:
        reconciler.reconcile_stack(stack.pk)
        time.sleep(1)
    bench.say(f"  canary start:        {starting.figures()}")
    found = Rollout.objects.get(stack=stack, state=Rollout.State.CANARY)
    with Load(port, args.concurrency) as promoting:
        started = time.perf_counter()
        rollouts.promote(user, found)
        took = time.perf_counter() - started
    bench.say(f"  canary promote ({took:.1f} s): {promoting.figures()}")
    state = Rollout.objects.get(pk=found.pk).state
    steady_p99 = percentile(steady.latencies, 99) * 1000
    rolling_p99 = percentile(rolling.latencies, 99) * 1000
    bench.say(
        f"RESULT rolling upgrade of 4 replicas: {sum(rolling.lost.values())} of "
        f"{len(rolling.latencies)} requests lost; p99 {rolling_p99:.1f} ms vs "
        f"{steady_p99:.1f} ms steady (+{rolling_p99 - steady_p99:.1f} ms)"
    )
    bench.say(
        f"RESULT canary start + promote: {sum(starting.lost.values())} + "
        f"{sum(promoting.lost.values())} of {len(starting.latencies) + len(promoting.latencies)}"
        f" requests lost; p99 during promote {percentile(promoting.latencies, 99) * 1000:.1f} ms"
        f" (rollout {state})"
    )


if __name__ == "__main__":
    main()
