"""The metrics collector's cost per pass: CPU seconds, wall time, engine calls, database
queries and rows written, for N running containers of a run-unique tenant (default 100).

    .venv/bin/python tests/perf/bench_metrics_collector.py [--containers 100] [--passes 5]
        [--threads 8] [--database berth_bench_metrics]

The containers (`sleep`, the demo worker image) are started with the docker CLI and
Berth's labels (managed, installation, tenant, stack, service), attributed to one stack
row of the benchmark's own database, so the collector sees exactly what it sees in
production; nothing else of the engine is listed (the installation id is the run's own).
`BERTH_DOCKER_HOST` picks the engine (tests/perf/bench_engine.sh start gives one of the
benchmark's own); everything is removed at the end by its tenant label.
"""

from __future__ import annotations

import argparse
import time

from _setup import (
    docker,
    install_cleanup,
    make_tenant,
    median,
    on_cleanup,
    remove_labelled,
    require_engine,
    require_images,
    say,
    setup_django,
)

IMAGE = "berth-demo/worker:1.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--threads", default="8,32,64", help="thread counts to compare")
    parser.add_argument("--database", default="berth_bench_metrics")
    args = parser.parse_args()
    install_cleanup()
    require_engine()
    require_images([IMAGE])
    setup_django(args.database)
    user, tenant, environment, host = make_tenant("metrics")
    stack = make_stack(tenant, environment)
    started = time.perf_counter()
    run_containers(args.containers, tenant, environment, stack)
    say(f"{args.containers} containers started in {time.perf_counter() - started:.1f}s")
    from django.test import override_settings

    for threads in [int(t) for t in args.threads.split(",")]:
        say(f"BERTH_METRICS_THREADS={threads}")
        with override_settings(BERTH_METRICS_THREADS=threads):
            measure(args.passes, threads)
    storage()
    rollup_cost()


def make_stack(tenant, environment):
    from apps.deployments.models import Stack

    return Stack.objects.create(
        tenant=tenant, environment=environment, name="metered", compose="services: {}\n"
    )


def run_containers(count: int, tenant, environment, stack) -> None:
    from django.conf import settings

    labels = {
        "io.berth.managed": "true",
        "io.berth.installation": settings.BERTH_INSTALLATION_ID,
        "io.berth.tenant": tenant.slug,
        "io.berth.tenant-id": str(tenant.pk),
        "io.berth.environment-id": str(environment.pk),
        "io.berth.stack": str(stack.pk),
        "io.berth.service": "worker",
    }
    on_cleanup(lambda: say(f"removed {remove_labelled(f'io.berth.tenant={tenant.slug}')} objects"))
    flags = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    for index in range(count):
        docker(
            "run", "-d", "--name", f"berth-{settings.BERTH_INSTALLATION_ID}-m{index}",
            "--memory", "16m", "--network", "none", *flags, "--label",
            f"io.berth.replica={index + 1}", IMAGE, "sleep", "3600",
        )  # fmt: skip


def measure(passes: int, threads: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.monitoring import collector

    cpu, wall, calls, queries, rows = [], [], [], [], []
    for number in range(passes + 1):
        time.sleep(1.05 - time.time() % 1)  # rows are unique per second
        with CaptureQueriesContext(connection) as captured:
            began_cpu, began = time.process_time(), time.perf_counter()
            result = collector.collect()
            cpu_used, took = time.process_time() - began_cpu, time.perf_counter() - began
        label = "first (series created)" if number == 0 else f"pass {number}"
        say(
            f"  {label}: {result.containers} containers, {result.sampled} sampled, "
            f"{took:.2f}s wall, {cpu_used:.2f}s CPU, {result.engine_calls} engine calls, "
            f"{len(captured)} queries, {result.rows} rows"
        )
        if number:
            cpu.append(cpu_used)
            wall.append(took)
            calls.append(result.engine_calls)
            queries.append(len(captured))
            rows.append(result.rows)
    say(
        f"RESULT {threads} threads, per pass over {result.containers} containers "
        f"(median of {passes}): "
        f"wall {median(wall):.2f}s, CPU {median(cpu):.2f}s, engine calls {median(calls):.0f}, "
        f"queries {median(queries):.0f}, rows {median(rows):.0f}"
    )


def storage() -> None:
    from django.db import connection

    from apps.monitoring.models import ContainerSample

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('monitoring_containersample')")
        size = cursor.fetchone()[0]
    count = ContainerSample.objects.count()
    per_row = size / count if count else 0
    say(
        f"storage: {count} container rows, {size / 1024:.0f} KiB with indexes, "
        f"{per_row:.0f} bytes a row; 100 containers for a day of 10 s rows: "
        f"{per_row * 100 * 8640 / 2**20:.0f} MiB"
    )


def rollup_cost() -> None:
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.monitoring import rollup

    with CaptureQueriesContext(connection) as captured:
        began = time.perf_counter()
        result = rollup.run(now=timezone.now() + timedelta(minutes=2))
    say(
        f"rollup of those rows: {result.written} rows written, {len(captured)} queries, "
        f"{time.perf_counter() - began:.2f}s"
    )


if __name__ == "__main__":
    main()
