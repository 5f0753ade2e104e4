"""One periodic reconcile pass over a host with 300 managed containers, nothing to do.

Deploys 10 stacks x 3 services x 10 replicas (berth-demo/worker running `sleep`, health
check off) through the service layer and the reconciler itself, then times, over
several repetitions: `reconcile_host` (the beat's pass: one filtered list call for the
whole host, then every stack planned and mirrored) and `reconcile_stack` on one
30-container stack. Prints containers, Docker API calls (Engine.api_calls), database
queries and seconds (median and p95). Removes everything it created at the end.

Run from the repo root:  .venv/bin/python tests/perf/bench_reconcile_pass.py [--repeat 20]
Needs: the engine at /var/run/docker.sock, PostgreSQL and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_reconcile"
IMAGE = "berth-demo/worker:1.0"
SERVICE_NAMES = ("alpha", "beta", "gamma")


def compose_text(replicas: int, image: str) -> str:
    service = textwrap.dedent(
        f"""\
          {{name}}:
            image: {image}
            entrypoint: ["sleep", "86400"]
            healthcheck:
              disable: true
            stop_grace_period: 1s
            deploy:
              replicas: {replicas}
              resources:
                limits:
                  memory: 16M
        """
    )
    body = "".join(textwrap.indent(service.format(name=n), "  ") for n in SERVICE_NAMES)
    return "services:\n" + body


def use_spare_redis(db: int) -> None:
    """create_stack queues reconcile_stack: into a Redis db of our own, which no worker
    reads (this script runs the reconciler itself), flushed at the end."""
    import os

    import redis

    url = f"redis://127.0.0.1:6379/{db}"
    os.environ["REDIS_URL"] = url
    client = redis.Redis.from_url(url)
    client.flushdb()
    bench.on_cleanup(client.flushdb)


# --- creating the containers ---------------------------------------------------------------


def deploy_stacks(
    user, environment, image: str, stacks: int, replicas: int, parallel: int
) -> list[int]:
    from django.db import connections

    from apps.deployments import reconciler, services

    # Spread over the tenant's environments: each environment's network is one /24 of
    # the engine's address pool (deploy/lib.sh), room for about 250 containers.
    environments = list(environment.tenant.environments.order_by("pk"))
    ids = [
        services.create_stack(
            user,
            environments[i % len(environments)],
            f"load{i:02d}",
            compose=compose_text(replicas, image),
        ).pk
        for i in range(1, stacks + 1)
    ]

    def converge(stack_id: int) -> int:
        try:
            reconciler.reconcile_stack(stack_id)
            return stack_id
        finally:
            connections.close_all()  # this thread's connection only

    began = time.perf_counter()
    total = stacks * len(SERVICE_NAMES) * replicas
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(converge, pk) for pk in ids]
        for done, future in enumerate(as_completed(futures), 1):
            future.result()
            running = len(bench.docker("ps", "-q", "--filter", tenant_label(environment)).split())
            say(
                f"  {done:>2}/{stacks} stacks converged, {running}/{total} containers running "
                f"({time.perf_counter() - began:.0f}s)"
            )
    return ids


def tenant_label(environment) -> str:
    return f"label=io.berth.tenant={environment.tenant.slug}"


# --- measuring -----------------------------------------------------------------------------


class EngineRecorder:
    """Wraps reconciler.get_engine to keep the Engine of each run (for its api_calls);
    the engine itself is the real one."""

    def __init__(self) -> None:
        from apps.deployments import reconciler

        self.module = reconciler
        self.original = reconciler.get_engine
        self.engines: list = []

    def __enter__(self) -> EngineRecorder:
        def recording(host):
            engine = self.original(host)
            self.engines.append(engine)
            return engine

        self.module.get_engine = recording
        return self

    def __exit__(self, *exc_info) -> None:
        self.module.get_engine = self.original

    @property
    def api_calls(self) -> int:
        return sum(e.api_calls for e in self.engines)


def timed(action, repeat: int) -> tuple[list[float], list[int], list[int], object]:
    """Seconds, engine API calls and database queries of each run; the last result."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    seconds, calls, queries, result = [], [], [], None
    for _ in range(repeat):
        with EngineRecorder() as recorder, CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            result = action()
            seconds.append(time.perf_counter() - began)
        calls.append(recorder.api_calls)
        queries.append(len(captured.captured_queries))
    return seconds, calls, queries, result


def line(name: str, containers: int, seconds: list[float], calls: list[int], queries: list[int]):
    say(
        f"{name:<30} {containers:>10} {max(calls):>9} {max(queries):>8} "
        f"{bench.median(seconds):>9.3f} {bench.p95(seconds):>8.3f}"
    )


def snapshot(environment) -> set[str]:
    return set(
        bench.docker("ps", "-aq", "--no-trunc", "--filter", tenant_label(environment)).split()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=10, help="per service (3 services)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="stacks deployed at once")
    parser.add_argument("--profile", action="store_true", help="cProfile one reconcile_host")
    parser.add_argument("--redis-db", type=int, default=12, help="a Redis db nothing else uses")
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    image = bench.unpublished_copy(IMAGE)
    use_spare_redis(args.redis_db)
    bench.setup_django(DATABASE)
    user, tenant, environment, host = bench.make_tenant("br")
    total = args.stacks * len(SERVICE_NAMES) * args.replicas
    say(
        f"deploying {args.stacks} stacks x {len(SERVICE_NAMES)} services x {args.replicas} "
        f"replicas = {total} containers through the reconciler ({args.parallel} at once) ..."
    )
    began = time.perf_counter()
    stack_ids = deploy_stacks(user, environment, image, args.stacks, args.replicas, args.parallel)
    say(f"deployed in {time.perf_counter() - began:.1f}s")
    measure(host, environment, stack_ids, total, args.repeat, args.profile)


def profile_pass(host) -> None:
    """Where one reconcile_host pass spends its time (cProfile, top functions)."""
    import cProfile
    import pstats

    from apps.deployments import reconciler

    profiler = cProfile.Profile()
    profiler.runcall(reconciler.reconcile_host, host.pk)
    say("\nprofile of one reconcile_host pass (cumulative, top 25):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


def measure(
    host, environment, stack_ids: list[int], total: int, repeat: int, profile: bool
) -> None:
    from apps.deployments import reconciler
    from apps.deployments.models import Stack
    from apps.hosts.engine import get_engine

    for stack in Stack.objects.filter(pk__in=stack_ids).exclude(state=Stack.State.HEALTHY)[:3]:
        say(f"  stack {stack.name} is {stack.state}: {stack.state_reason[:300]}")
    # Warm-up (the first mirror of every row), and the repair of anything the deployment
    # left undone (a create that timed out on a busy engine): measured passes have
    # nothing to do.
    for _ in range(5):
        reconciler.reconcile_host(host.pk)
        if not Stack.objects.filter(pk__in=stack_ids).exclude(state="healthy").exists():
            break
    states = sorted(set(Stack.objects.filter(pk__in=stack_ids).values_list("state", flat=True)))
    before = snapshot(environment)
    with get_engine(host) as engine:
        listed = len(engine.list_managed())
    say(
        f"stack states after warm-up: {', '.join(states)}; {len(before)} containers of this "
        f"run, {listed} managed containers on the engine in all"
    )

    list_seconds, list_calls, _q, _r = timed(lambda: _list_once(host), repeat)
    host_seconds, host_calls, host_queries, counters = timed(
        lambda: reconciler.reconcile_host(host.pk), repeat
    )
    one = stack_ids[0]
    one_size = Stack.objects.get(pk=one).containers.count()
    stack_seconds, stack_calls, stack_queries, _r = timed(
        lambda: reconciler.reconcile_stack(one), repeat
    )
    after = snapshot(environment)
    say(f"\n{repeat} repetitions each, nothing to do (containers changed: {len(before ^ after)})")
    say(
        f"{'pass':<30} {'containers':>10} {'api calls':>9} {'queries':>8} "
        f"{'median s':>9} {'p95 s':>8}"
    )
    line("list_managed (one call)", listed, list_seconds, list_calls, [0])
    line("reconcile_host", listed, host_seconds, host_calls, host_queries)
    line("reconcile_stack (one stack)", one_size, stack_seconds, stack_calls, stack_queries)
    say(f"reconcile_host counters (last run): {counters}")
    if profile:
        profile_pass(host)
    say(
        f"\nRESULT one reconcile pass over {total} managed containers: "
        f"{max(host_calls)} Docker API calls, {bench.median(host_seconds):.3f}s median, "
        f"{bench.p95(host_seconds):.3f}s p95"
    )


def _list_once(host) -> int:
    from apps.deployments import reconciler

    with reconciler.get_engine(host) as engine:
        return len(engine.list_managed())


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        sys.exit(130)
    finally:
        say("cleaning up (removing the containers, volumes and networks of this run) ...")
        bench.run_cleanups()
        say("done")
