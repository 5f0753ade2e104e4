"""One periodic reconcile pass over a host with many managed containers, nothing to do.

Deploys `--stacks` stacks x `--services` services x `--replicas` replicas (default 10 x 3
x 10 = 300; `--stacks 50 --services 2 --replicas 50` for 5,000) of berth-demo/worker
running `sleep` (health check off, 16 MiB limit) through the service layer and the
reconciler itself, spread over enough environments (one /24 network each), then times,
over several repetitions: `reconcile_host` (the beat's pass) with a full list (one
filtered list call for the whole host, as the first pass of a worker makes), then
event-driven (only the containers the engine's events named since the last pass are
listed: apps/deployments/listing.py), then every stack planned and mirrored; and
`reconcile_stack` on one stack. Prints containers, Docker API calls (Engine.api_calls),
database queries and seconds (median and p95). Then the pass must stay correct: one
container is killed (`docker kill`) and the next event-driven pass must bring it back
(timed). Removes everything it created at the end, also after a failure or Ctrl-C.

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
SERVICE_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
# An environment's network is one /24 of the engine's address pool (deploy/lib.sh); Berth
# does not choose subnets, so the containers are spread to leave room in each.
PER_ENVIRONMENT = 200


def compose_text(replicas: int, image: str, services: int = 3) -> str:
    service = textwrap.dedent(
        f"""\
          {{name}}:
            image: {image}
            entrypoint: ["sleep", "86400"]
            healthcheck:
              disable: true
            stop_grace_period: 0s
            deploy:
              replicas: {replicas}
              resources:
                limits:
                  memory: 16M
        """
    )
    names = SERVICE_NAMES[:services]
    body = "".join(textwrap.indent(service.format(name=n), "  ") for n in names)
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


def environments_for(user, environment, total: int) -> list:
    """The tenant's environments, more made (through the service layer) until each holds
    at most PER_ENVIRONMENT of the `total` containers."""
    from apps.tenants import services as tenant_services

    tenant = environment.tenant
    wanted = max(1, -(-total // PER_ENVIRONMENT))
    have = list(tenant.environments.order_by("pk"))
    for i in range(len(have), wanted):
        tenant_services.create_environment(actor=user, tenant=tenant, slug=f"load{i:02d}")
    return list(tenant.environments.order_by("pk"))


def deploy_stacks(user, environment, image: str, args) -> list[int]:
    from django.db import connections

    from apps.deployments import reconciler, services
    from apps.deployments.models import Stack

    total = args.stacks * args.services * args.replicas
    environments = environments_for(user, environment, total)
    say(f"  {len(environments)} environments (at most {PER_ENVIRONMENT} containers each)")
    text = compose_text(args.replicas, image, args.services)
    names = [f"load{i:02d}" for i in range(1, args.stacks + 1)]
    ids: list[int] = []

    def converge(index: int) -> int:
        """Create the stack, then converge it, as a user's deploy and its worker would:
        created all at once up front, the last stacks' operations would pass their
        deadline before the reconciler reached them."""
        try:
            stack = services.create_stack(
                user, environments[index % len(environments)], names[index], compose=text
            )
            ids.append(stack.pk)
            reconciler.reconcile_stack(stack.pk)
            if index < args.stopped:
                # Through the service layer, as a user's Stop: the containers stay.
                services.stop(user, Stack.objects.get(pk=stack.pk))
                reconciler.reconcile_stack(stack.pk)
            return stack.pk
        finally:
            connections.close_all()  # this thread's connection only

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(converge, index) for index in range(args.stacks)]
        try:
            for done, future in enumerate(as_completed(futures), 1):
                future.result()
                progress(done, args.stacks, total, environment, began)
        except BaseException:
            # Ctrl-C or a failure: the stacks not started yet are not deployed before
            # the cleanup (leaving the block waits only for those under way).
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return sorted(ids)


def progress(done: int, stacks: int, total: int, environment, began: float) -> None:
    if done % max(1, stacks // 10) and done != stacks:
        return
    running = len(bench.docker("ps", "-q", "--filter", tenant_label(environment)).split())
    say(
        f"  {done:>2}/{stacks} stacks converged, {running}/{total} containers running "
        f"({time.perf_counter() - began:.0f}s)"
    )


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
    parser.add_argument("--services", type=int, default=3, choices=range(1, 6))
    parser.add_argument("--replicas", type=int, default=10, help="per service")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="stacks deployed at once")
    parser.add_argument(
        "--stopped",
        type=int,
        default=0,
        help="stop the first N stacks once deployed (their containers stay, exited)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one reconcile_host")
    parser.add_argument("--redis-db", type=int, default=9, help="a Redis db nothing else uses")
    parser.add_argument("--database", default=DATABASE, help="created and dropped by the run")
    parser.add_argument(
        "--keep", metavar="FILE", help="leave everything in place, described in FILE (JSON)"
    )
    parser.add_argument(
        "--reuse", metavar="FILE", help="measure what a --keep run left, then remove it"
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="no engine: time the pass after its list call, fed the containers as listed",
    )
    args = parser.parse_args()

    bench.install_cleanup()
    use_spare_redis(args.redis_db)
    if args.synthetic:
        synthetic(args)
        return
    bench.require_engine()
    if args.reuse:
        host, environment, stack_ids, total, image = reattach(args.reuse)
    else:
        host, environment, stack_ids, total, image = build(args)
    measure(host, environment, stack_ids, total, args.repeat, args.profile)
    restore_killed(host, environment)
    if args.keep:
        keep(args.keep, environment, stack_ids, total, image)


def build(args) -> tuple:
    bench.require_images([IMAGE])
    image = bench.unpublished_copy(IMAGE)
    bench.setup_django(args.database)
    user, tenant, environment, host = bench.make_tenant("br")
    total = args.stacks * args.services * args.replicas
    say(
        f"deploying {args.stacks} stacks x {args.services} services x {args.replicas} "
        f"replicas = {total} containers through the reconciler ({args.parallel} at once) ..."
    )
    began = time.perf_counter()
    stack_ids = deploy_stacks(user, environment, image, args)
    say(f"deployed in {time.perf_counter() - began:.1f}s")
    return host, environment, stack_ids, total, image


def keep(path: str, environment, stack_ids: list[int], total: int, image: str) -> None:
    """Leave the containers and the database for a later `--reuse` (which removes them):
    building thousands of containers takes longer than measuring them."""
    import json
    import os

    from django.db import connection

    state = {
        "database": connection.settings_dict["NAME"],
        "installation": os.environ["BERTH_INSTALLATION_ID"],
        "tenant": environment.tenant.slug,
        "image": image,
        "stacks": stack_ids,
        "total": total,
    }
    Path(path).write_text(json.dumps(state))
    bench._cleanups[:] = [bench._cleanups[0]]  # only the Redis flush; the rest is kept
    say(f"kept: {state['total']} containers of tenant {state['tenant']}, state in {path}")


def reattach(path: str) -> tuple:
    """Django on a kept run's database and installation; its removal registered."""
    import json
    import os

    state = json.loads(Path(path).read_text())
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{state['database']}"
    os.environ["BERTH_INSTALLATION_ID"] = state["installation"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    bench.on_cleanup(lambda: bench.docker("rmi", "-f", state["image"], check=False))
    bench.on_cleanup(lambda: bench.drop_database(state["database"]))
    bench.on_cleanup(lambda: bench.remove_labelled(f"io.berth.tenant={state['tenant']}"))
    import django

    django.setup()
    from django.core.management import call_command

    from apps.hosts.models import Host
    from apps.tenants.models import Environment

    # Measured with another checkout (a before/after): its migrations apply to the kept
    # database first.
    call_command("migrate", verbosity=0)

    environment = Environment.objects.filter(tenant__slug=state["tenant"]).order_by("pk").first()
    say(f"reusing {state['total']} containers of tenant {state['tenant']} ({path})")
    host = Host.objects.get(name="local")
    return host, environment, state["stacks"], state["total"], state["image"]


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

    settled = [Stack.State.HEALTHY, Stack.State.STOPPED]
    for stack in Stack.objects.filter(pk__in=stack_ids).exclude(state__in=settled)[:3]:
        say(f"  stack {stack.name} is {stack.state}: {stack.state_reason[:300]}")
    # Warm-up (the first mirror of every row), and the repair of anything the deployment
    # left undone (a create that timed out on a busy engine): measured passes have
    # nothing to do.
    for _ in range(5):
        reconciler.reconcile_host(host.pk)
        unsettled = Stack.objects.filter(pk__in=stack_ids).exclude(state__in=["healthy", "stopped"])
        if not unsettled.exists():
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
    full_seconds, full_calls, full_queries, full_counters = timed(lambda: _full_pass(host), repeat)
    reconciler.reconcile_host(host.pk)  # the feed's first take: what the full passes did
    host_seconds, host_calls, host_queries, counters = timed(
        lambda: reconciler.reconcile_host(host.pk), repeat
    )
    one = stack_ids[-1]  # a running one (--stopped stops the first ones)
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
    line("reconcile_host, full list", listed, full_seconds, full_calls, full_queries)
    line("reconcile_host, event-driven", listed, host_seconds, host_calls, host_queries)
    line("reconcile_stack (one stack)", one_size, stack_seconds, stack_calls, stack_queries)
    say(f"reconcile_host counters (last full run): {full_counters}")
    say(f"reconcile_host counters (last event-driven run): {counters}")
    if profile:
        profile_pass(host)
    say(
        f"\nRESULT one reconcile pass over {total} managed containers, event-driven: "
        f"{max(host_calls)} Docker API calls, {max(host_queries)} queries, "
        f"{bench.median(host_seconds):.3f}s median, "
        f"{bench.p95(host_seconds):.3f}s p95"
    )
    say(
        f"RESULT one reconcile pass over {total} managed containers, full list: "
        f"{max(full_calls)} Docker API calls, {max(full_queries)} queries, "
        f"{bench.median(full_seconds):.3f}s median, "
        f"{bench.p95(full_seconds):.3f}s p95"
    )


def _full_pass(host) -> dict:
    """A pass with no kept listing: everything listed (and a new event feed opened,
    on a connection of its own, before the list: its calls are not in the pass's)."""
    from apps.deployments import listing, reconciler

    listing.forget(host.pk)
    return reconciler.reconcile_host(host.pk)


def _list_once(host) -> int:
    from apps.deployments import reconciler

    with reconciler.get_engine(host) as engine:
        return len(engine.list_managed())


def _feed_read(host, container_id: str, timeout: float = 10.0) -> float:
    """Seconds until the host's event feed has read an event naming the container (a
    pass sees what its feed has read; without a feed, the pass lists everything)."""
    from apps.deployments import listing

    began = time.perf_counter()
    while container_id not in listing.pending(host.pk):
        if time.perf_counter() - began > timeout or host.pk not in listing._kept:
            break
        time.sleep(0.005)
    return time.perf_counter() - began


def restore_killed(host, environment) -> None:
    """Correctness at scale: `docker kill` one container, then one pass must bring its
    slot (stack, service, replica) back to running."""
    from apps.deployments import reconciler

    ids = bench.docker("ps", "-q", "--no-trunc", "--filter", tenant_label(environment)).split()
    victim = ids[len(ids) // 2]
    fmt = '{{index .Config.Labels "io.berth.stack"}} {{index .Config.Labels "io.berth.service"}}'
    fmt += ' {{index .Config.Labels "io.berth.replica"}}'
    stack, service, replica = bench.docker("inspect", "--format", fmt, victim).split()
    bench.docker("kill", victim)
    state = bench.inspect_states([victim])
    waited = _feed_read(host, victim)
    seconds, calls, queries, counters = timed(lambda: reconciler.reconcile_host(host.pk), 1)
    slot = [
        f"label=io.berth.stack={stack}",
        f"label=io.berth.service={service}",
        f"label=io.berth.replica={replica}",
    ]
    filters = [arg for label in slot for arg in ("--filter", label)]
    running = bench.docker("ps", "-q", "--no-trunc", *filters).split()
    verdict = "RESTORED" if running else "NOT RESTORED"
    same = " (same container started again)" if running == [victim] else ""
    say(
        f"\nkilled {victim[:12]} (stack {stack}, {service} #{replica}, then {state[0][0]}); "
        f"one reconcile_host pass: {seconds[0]:.3f}s, {calls[0]} Docker API calls, "
        f"{queries[0]} queries, counters {counters}; the event feed had read the kill "
        f"{waited * 1000:.0f} ms after `docker kill` returned"
    )
    say(f"RESULT killed container {verdict} by the next pass{same}: {seconds[0]:.3f}s")


# --- without the engine: the pass after its list call -----------------------------------


def synthetic(args) -> None:
    """The stacks in the database only; `reconcile_listed` (everything the pass does
    after its one list call) fed their containers as the engine lists them, labelled as
    the reconciler labels what it creates. With nothing to do it never calls the engine,
    so this measures Berth's own share of a pass at any size, on any machine."""
    bench.setup_django(args.database)
    from apps.deployments import reconciler
    from apps.deployments.models import Container, Stack

    user, tenant, environment, host = bench.make_tenant("br")
    bench._cleanups.pop()  # the tenant's engine objects: it has none, and the engine may be busy
    total = args.stacks * args.services * args.replicas
    stack_ids = synthetic_stacks(user, environment, args, total)
    listed = [c for stack in Stack.objects.filter(pk__in=stack_ids) for c in as_listed(stack)]
    say(f"{len(stack_ids)} stacks, {len(listed)} containers as listed (no engine)")

    def one_pass() -> dict:
        return reconciler.reconcile_listed(host, None, reconciler._stacks_on(host), listed)

    one_pass()  # the first mirror writes every row
    say(f"container rows after the first pass: {Container.objects.count()}")
    seconds, _calls, queries, counters = timed(one_pass, args.repeat)
    header = f"{'pass (engine-free)':<30} {'containers':>10} {'queries':>8} {'median s':>9}"
    say(f"\n{header} {'p95 s':>8}")
    say(
        f"{'reconcile_listed':<30} {len(listed):>10} {max(queries):>8} "
        f"{bench.median(seconds):>9.3f} {bench.p95(seconds):>8.3f}"
    )
    say(f"counters (last run): {counters}")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(one_pass)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    say(
        f"\nRESULT engine-free pass over {len(listed)} containers in {len(stack_ids)} stacks: "
        f"{max(queries)} queries, {bench.median(seconds):.3f}s median, "
        f"{bench.p95(seconds):.3f}s p95"
    )


def synthetic_stacks(user, environment, args, total: int) -> list[int]:
    from apps.deployments import services
    from apps.deployments.models import Stack

    environments = environments_for(user, environment, total)
    text = compose_text(args.replicas, IMAGE, args.services)
    ids = [
        services.create_stack(
            user, environments[i % len(environments)], f"load{i:02d}", compose=text
        ).pk
        for i in range(1, args.stacks + 1)
    ]
    # As if deployed: the operation is over.
    Stack.objects.filter(pk__in=ids).update(operation="", operation_deadline=None)
    return ids


def as_listed(stack) -> list:
    """Every replica of the stack as the engine lists it, running its current revision,
    each with an address on the stack's network (the test's `engine_view` has none)."""
    from dataclasses import replace

    from apps.deployments import containers as naming
    from tests.deployments.test_reconcile_queries import engine_view

    network = naming.network_name(stack)
    return [
        replace(c, addresses={network: f"10.0.{i // 250}.{i % 250 + 2}"})
        for i, c in enumerate(engine_view(stack))
    ]


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
