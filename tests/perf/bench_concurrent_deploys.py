"""Many stacks deployed at once by many tenants through the REST API: all reach healthy,
none lost or duplicated, and no tenant waits behind another.

Berth runs as `make run` runs it, on PostgreSQL: a real daphne, one Celery worker with
`make run`'s settings (`--concurrency ${BERTH_WORKER_CONCURRENCY:-2}`, tenant slots from
settings: BERTH_TENANT_WORKER_SLOTS, by default concurrency - 1) and Celery beat (the
periodic reconcile and health passes compete for the same worker, as they do there).

Two scenarios, each with fresh tenants (one user, tenant and API token each):

- even:   `--tenants` tenants deploy `--stacks` stacks between them, all at once (one
          client thread per tenant, POSTing its stacks back to back);
- skewed: one tenant deploys `--heavy` stacks, every other tenant one; the heavy
          tenant's POSTs are all answered before the others send theirs, so its tasks
          are queued first: the others must not wait behind it.

Each stack is one container: a copy of the demo web image (`berth-demo/web:1.0`, busybox
httpd, 16 MiB) with its Docker health check (every 2 s; 5 s timeout, 5 retries: on a
busy machine a probe's `wget` may take seconds). The clock of a stack
runs from its POST until a poll of its tenant's stack list says `healthy` (one poller
thread, every `--poll` s). It prints each tenant's median time-to-healthy, the wall time,
the fairness ratio (slowest tenant's median / fastest's), and what the engine holds:
lost (a 201 that never reached healthy) and duplicated (a stack with other than one
container, or a container of no stack). Between scenarios every stack is DELETEd through
the API; at the end everything carrying the run's installation label is removed, also
after a failure or Ctrl-C.

Run from the repo root:  .venv/bin/python tests/perf/bench_concurrent_deploys.py \
    [--scenario both] [--tenants 10] [--stacks 50] [--heavy 40] [--redis-db 13]

Run one at a time: the Redis db is flushed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import docker, say  # noqa: E402
from tests.perf.bench_deploy_vs_compose import (  # noqa: E402
    Api,
    Processes,
    _ts,
    free_port,
    inspect_all,
    redis_env,
    wait_for,
)

# One database per run: a second run beside this one (a Ctrl-C'd one still cleaning up)
# must not drop it under this run's server and worker.
DATABASE = f"berth_bench_concurrent_{bench.RUN_ID}"
IMAGE = "berth-demo/web:1.0"
TIMEOUT = 600.0  # per scenario, until the last stack is healthy (--timeout)
COMPOSE = """\
services:
  web:
    image: {image}
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1"]
      interval: 2s
      timeout: 5s
      retries: 5
    stop_grace_period: 2s
    deploy:
      resources:
        limits:
          memory: 16M
"""


@dataclass
class Tenant:
    slug: str
    tenant_id: int
    environment_id: int
    api: Api
    count: int  # stacks it deploys
    posted: dict[int, float] = field(default_factory=dict)  # stack id -> POST began
    healthy: dict[int, float] = field(default_factory=dict)  # stack id -> seen healthy
    failed: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # POSTs not answered 201

    def times(self) -> list[float]:
        return [self.healthy[s] - self.posted[s] for s in self.healthy]


# --- Berth: daphne, a worker and beat, as `make run` starts them ------------------------


def start_berth(
    env: dict[str, str], processes: Processes, logs: Path, port: int
) -> tuple[str, Path]:
    bin_dir = Path(sys.executable).parent
    concurrency = env.get("BERTH_WORKER_CONCURRENCY", "2")
    processes.start(
        "daphne",
        [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "paas.asgi:application"],
        env,
    )
    worker_log = processes.start(
        "worker",
        [
            *(str(bin_dir / "celery"), "-A", "paas", "worker", "-l", "INFO"),
            *("--concurrency", concurrency, "-n", f"bench-{bench.RUN_ID}@%h"),
        ],
        env,
    )
    processes.start(
        "beat",
        [
            *(str(bin_dir / "celery"), "-A", "paas", "beat", "-l", "INFO"),
            *("--schedule", str(logs / "celerybeat-schedule")),
        ],
        env,
    )
    wait_for(lambda: b"ready." in worker_log.read_bytes(), 90, "the Celery worker")
    say(f"daphne on 127.0.0.1:{port}; Celery worker (concurrency {concurrency}) and beat up")
    return f"http://127.0.0.1:{port}", worker_log


def make_tenants(base: str, prefix: str, counts: list[int]) -> list[Tenant]:
    from django.contrib.auth import get_user_model

    from apps.accounts.services import create_token
    from apps.hosts.services import ensure_local_host
    from apps.tenants import services as tenant_services

    ensure_local_host()
    tenants = []
    for number, count in enumerate(counts):
        slug = f"{prefix}{number:02d}-{bench.RUN_ID}"  # removed with the installation's label
        user = get_user_model().objects.create_user(
            username=f"bench-{slug}", email=f"{slug}@example.com", password=bench.RUN_ID * 6
        )
        tenant = tenant_services.create_tenant(actor=user, slug=slug, name=slug)
        environment = tenant.environments.order_by("pk").first()
        _token, raw = create_token(actor=user, name="benchmark", tenant=tenant)
        tenants.append(Tenant(slug, tenant.pk, environment.pk, Api(base, raw), count))
    return tenants


# --- one scenario ------------------------------------------------------------------------


def post_stacks(tenant: Tenant, compose: str, start: threading.Event) -> None:
    start.wait()
    for number in range(tenant.count):
        began = time.time()
        try:
            status, body = tenant.api.call(
                "POST",
                "/api/v1/stacks/",
                {"name": f"s{number}", "environment": tenant.environment_id, "compose": compose},
            )
        except OSError as exc:
            tenant.errors.append(f"s{number}: {exc}")
            continue
        if status != 201:
            tenant.errors.append(f"s{number}: {status} {body}")
            continue
        tenant.posted[body["id"]] = began


def poll_until_done(tenants: list[Tenant], posting: list[threading.Thread], poll: float) -> None:
    """One GET of each tenant's stack list per round; stops when every POSTed stack is
    healthy or failed (and the posting threads are done), or at TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for tenant in tenants:
            status, body = tenant.api.call("GET", "/api/v1/stacks/?limit=500")
            if status != 200:
                continue
            now = time.time()
            for row in body.get("results", []):
                stack_id = row["id"]
                if stack_id not in tenant.posted or stack_id in tenant.healthy:
                    continue
                if row["state"] == "healthy":
                    tenant.healthy[stack_id] = now
                    tenant.failed.pop(stack_id, None)
                elif row["state"] == "failed":
                    tenant.failed[stack_id] = row.get("state_reason", "")
        posting_done = not any(t.is_alive() for t in posting)
        pending = sum(len(t.posted) - len(t.healthy) for t in tenants)
        if posting_done and pending == 0:
            return
        time.sleep(poll)


PHASES = (
    ("queued", "POST -> container created (request, queue, a worker free, network)"),
    ("start", "created -> running"),
    ("to healthy", "running -> the client sees healthy (first probes, the worker noticing)"),
)


def phases(tenants: list[Tenant]) -> dict[str, list[float]]:
    """Where each stack's time went, from the engine's own timestamps (Docker keeps only
    the last five probes, so the first passing one is not always known: not used)."""
    found: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    for tenant in tenants:
        ids = bench.ids_with_label("ps", f"io.berth.tenant={tenant.slug}")
        for attrs in inspect_all(ids):
            stack_id = int(attrs["Config"]["Labels"].get("io.berth.stack", 0))
            if stack_id not in tenant.healthy:
                continue
            marks = [
                tenant.posted[stack_id],
                _ts(attrs["Created"]),
                _ts(attrs["State"]["StartedAt"]),
                tenant.healthy[stack_id],
            ]
            for i, (name, _) in enumerate(PHASES):
                found[name].append(marks[i + 1] - marks[i])
    return found


def engine_check(tenants: list[Tenant]) -> tuple[int, int, int, int]:
    """(containers, stacks with no container, stacks with more than one, containers of no
    posted stack) from the engine's own list, by the tenants' labels."""
    containers = missing = duplicated = strays = 0
    for tenant in tenants:
        out = docker(
            "ps", "-a", "--filter", f"label=io.berth.tenant={tenant.slug}",
            "--format", '{{.Label "io.berth.stack"}}',
        )  # fmt: skip
        per_stack: dict[int, int] = {}
        for line in out.split():
            per_stack[int(line)] = per_stack.get(int(line), 0) + 1
        containers += sum(per_stack.values())
        strays += sum(n for s, n in per_stack.items() if s not in tenant.posted)
        missing += sum(1 for s in tenant.posted if s not in per_stack)
        duplicated += sum(1 for s in tenant.posted if per_stack.get(s, 0) > 1)
    return containers, missing, duplicated, strays


def received(worker_log: Path, since: int) -> str:
    """How many tasks of each kind the worker received after byte `since` of its log: a
    task re-sent while it waits for a slot shows here, whatever the machine's load."""
    counts: dict[str, int] = {}
    with worker_log.open("rb") as handle:
        handle.seek(since)
        for line in handle.read().decode(errors="replace").splitlines():
            if line.endswith(" received") and "Task " in line:
                name = line.split("Task ", 1)[1].split("[", 1)[0]
                counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "nothing"


def run_scenario(
    name: str,
    base: str,
    counts: list[int],
    compose: str,
    poll: float,
    heavy_first: bool,
    worker_log: Path,
) -> dict:
    say(f"\n== {name}: {len(counts)} tenants, {sum(counts)} stacks ({counts})")
    since = worker_log.stat().st_size
    tenants = make_tenants(base, name[0], counts)
    start = threading.Event()
    threads = [
        threading.Thread(target=post_stacks, args=(t, compose, start), daemon=True) for t in tenants
    ]
    began = time.time()
    if heavy_first:  # the first tenant's POSTs all answered before the others send theirs
        threads[0].start()
        start.set()
        threads[0].join()
        for thread in threads[1:]:
            thread.start()
    else:
        for thread in threads:
            thread.start()
        start.set()
    poller = threading.Thread(target=poll_until_done, args=(tenants, threads, poll))
    poller.start()
    for thread in threads:
        thread.join()
    posted_at = time.time() - began
    poller.join()
    wall = time.time() - began
    containers, missing, duplicated, strays = engine_check(tenants)
    lost = sum(len(t.posted) - len(t.healthy) + len(t.errors) for t in tenants)
    extra_rows = extra_stack_rows(tenants)
    say(f"  all POSTs answered after {posted_at:.1f}s; wall time to the last healthy {wall:.1f}s")
    say(f"  {'tenant':<16} {'stacks':>6} {'median':>7} {'min':>6} {'max':>6}")
    medians = {}
    for tenant in tenants:
        times = tenant.times()
        medians[tenant.slug] = bench.median(times)
        say(
            f"  {tenant.slug:<16} {len(times):>6} {medians[tenant.slug]:7.1f} "
            f"{min(times, default=float('nan')):6.1f} {max(times, default=float('nan')):6.1f}"
        )
        for reason in list(tenant.failed.values())[:3] + tenant.errors[:3]:
            say(f"    ! {reason}")
    ratio = max(medians.values()) / min(medians.values())
    say(f"  fairness: slowest tenant median / fastest = {ratio:.2f} (goal <= 2)")
    if heavy_first:
        others = [medians[t.slug] for t in tenants[1:]]
        say(
            f"  heavy tenant median {medians[tenants[0].slug]:.1f}s; the others' medians "
            f"{min(others):.1f}-{max(others):.1f}s (median of them {bench.median(others):.1f}s)"
        )
    say(
        f"  engine: {containers} containers for {sum(len(t.posted) for t in tenants)} stacks; "
        f"lost {lost} (not healthy; {missing} without a container), duplicated {duplicated} "
        f"stacks, {strays} stray containers, {extra_rows} stack rows not POSTed"
    )
    say(f"  worker: {received(worker_log, since)}")
    say("  where the time goes (median / max over the stacks, seconds):")
    for phase, values in phases(tenants).items():
        meaning = dict(PHASES)[phase]
        say(
            f"    {phase:<12} {bench.median(values):6.1f} {max(values, default=0):6.1f}   {meaning}"
        )
    say(
        f"RESULT {name}: wall {wall:.1f}s, ratio {ratio:.2f}, lost {lost}, "
        f"duplicated {duplicated + strays + extra_rows}"
    )
    teardown(tenants)
    return {"wall": wall, "ratio": ratio, "lost": lost, "medians": medians}


def extra_stack_rows(tenants: list[Tenant]) -> int:
    from apps.deployments.models import Stack

    extra = 0
    for tenant in tenants:
        ids = set(Stack.objects.filter(tenant_id=tenant.tenant_id).values_list("pk", flat=True))
        extra += len(ids - set(tenant.posted))
    return extra


def teardown(tenants: list[Tenant]) -> None:
    """DELETE every stack through the API, then wait until the engine holds none."""
    began = time.time()
    for tenant in tenants:
        for stack_id in tenant.posted:
            tenant.api.call("DELETE", f"/api/v1/stacks/{stack_id}/")

    def gone() -> bool:
        return not any(bench.ids_with_label("ps", f"io.berth.tenant={t.slug}") for t in tenants)

    try:
        wait_for(gone, TIMEOUT, "the stacks to be removed", interval=1)
        say(f"  teardown through the API: {time.time() - began:.1f}s")
    except RuntimeError as exc:
        say(f"  teardown: {exc}; removing by label")
    for tenant in tenants:
        bench.remove_labelled(f"io.berth.tenant={tenant.slug}")


# --- main -----------------------------------------------------------------------------


def main() -> None:
    global TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["even", "skewed", "both"], default="both")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--stacks", type=int, default=50, help="even: stacks in all")
    parser.add_argument("--heavy", type=int, default=40, help="skewed: the heavy tenant's")
    parser.add_argument("--poll", type=float, default=0.5, help="client poll interval (s)")
    parser.add_argument("--redis-db", type=int, default=13, help="a Redis db nothing else uses")
    parser.add_argument("--keep-logs", action="store_true", help="keep daphne/Celery logs")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="per scenario (s)")
    args = parser.parse_args()
    TIMEOUT = args.timeout

    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    redis_url = redis_env(args.redis_db)
    logs = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    bench.setup_django(DATABASE)
    compose = COMPOSE.format(image=bench.unpublished_copy(IMAGE))
    # At exit, in this order: the server, worker and beat stopped (registered below), so
    # nothing recreates what is removed; everything with the run's installation label
    # removed; then the image copy, the database and the Redis db.
    installation = os.environ["BERTH_INSTALLATION_ID"]
    bench.on_cleanup(lambda: bench.remove_labelled(f"io.berth.installation={installation}"))
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "BERTH_LOG_LEVEL": "INFO",
    }
    processes = Processes(logs)
    if args.keep_logs:
        say(f"server, worker and beat logs: {logs}")
    else:
        bench.on_cleanup(lambda: shutil.rmtree(logs, ignore_errors=True))
    bench.on_cleanup(processes.stop)
    base, worker_log = start_berth(env, processes, logs, port)
    from django.conf import settings

    say(
        f"worker settings: concurrency {env.get('BERTH_WORKER_CONCURRENCY', '2')}, "
        f"tenant slots {settings.BERTH_TENANT_WORKER_SLOTS}"
    )
    probe = make_tenants(base, "p", [0])[0]
    wait_for(probe.api.ready, 30, "the API")

    results = {}
    if args.scenario in ("even", "both"):
        each, rest = divmod(args.stacks, args.tenants)
        counts = [each + (1 if i < rest else 0) for i in range(args.tenants)]
        results["even"] = run_scenario("even", base, counts, compose, args.poll, False, worker_log)
    if args.scenario in ("skewed", "both"):
        counts = [args.heavy] + [1] * (args.tenants - 1)
        results["skewed"] = run_scenario(
            "skewed", base, counts, compose, args.poll, True, worker_log
        )
    say("\nsummary:")
    for name, result in results.items():
        say(
            f"  {name:<7} wall {result['wall']:6.1f}s  ratio {result['ratio']:5.2f}  "
            f"lost {result['lost']}"
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        sys.exit(130)
    finally:
        bench.run_cleanups()
