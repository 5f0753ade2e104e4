"""The autoscaler's cost per beat: wall time, CPU and database queries of one
`evaluate_all` over N autoscaled services of C containers each (defaults 100 and 3),
judged on stored metrics (12 raw samples per container in the 120 s window), with the
load at the target so that no service scales (the judgement alone is measured).

    .venv/bin/python tests/perf/bench_autoscaling.py [--services 100] [--containers 3]
        [--passes 5] [--database berth_bench_autoscaling]

No engine: the stacks, services and metric rows are written directly to the
benchmark's own database, dropped at the end.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from _setup import install_cleanup, make_tenant, median, say, setup_django

COMPOSE = """
services:
  web:
    image: berth-demo/web:1.0
    cpus: 0.5
"""


def populate(environment, services: int, containers: int) -> None:
    from django.utils import timezone

    from apps.autoscaling.models import Autoscaler
    from apps.deployments.models import Revision, Service, Stack
    from apps.deployments.spec import build_spec
    from apps.monitoring.models import ContainerSample, Series

    spec = build_spec(COMPOSE, {}, environment)
    now = timezone.now().replace(microsecond=0)
    samples = []
    for index in range(services):
        stack = Stack.objects.create(
            tenant=environment.tenant, environment=environment, name=f"s{index}", compose=COMPOSE
        )
        stack.current_revision = Revision.objects.create(stack=stack, number=1, spec=spec)
        stack.state, stack.operation = Stack.State.HEALTHY, ""
        stack.save()
        service = Service.objects.create(stack=stack, name="web", image="x", scale=containers)
        Autoscaler.objects.create(
            tenant=environment.tenant, service=service, min_replicas=1, max_replicas=10,
            target=50, cooldown_seconds=0,
        )  # fmt: skip
        for c in range(containers):
            series = Series.objects.create(
                kind=Series.Kind.CONTAINER, key=f"c0:{stack.pk}-{c}",
                tenant=environment.tenant, stack_pk=stack.pk, service_name="web",
                first_seen_at=now - timedelta(seconds=120), last_seen_at=now,
            )  # fmt: skip
            samples += [
                ContainerSample(
                    series=series, tier=0, at=now - timedelta(seconds=10 * k), cpu_percent=25.0
                )
                for k in range(12)
            ]
    ContainerSample.objects.bulk_create(samples, batch_size=5000)


def measure(passes: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.autoscaling import services as autoscaling

    walls, cpus, queries = [], [], []
    for _ in range(passes):
        wall, cpu = time.perf_counter(), time.process_time()
        with CaptureQueriesContext(connection) as captured:
            scaled = autoscaling.evaluate_all()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        queries.append(len(captured))
        assert scaled == 0, "the load is at the target: nothing should scale"
    say(
        f"evaluate_all: median {median(walls):.2f}s wall, {median(cpus):.2f}s CPU, "
        f"{median(queries):.0f} queries a pass"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--containers", type=int, default=3)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--database", default="berth_bench_autoscaling")
    args = parser.parse_args()
    install_cleanup()
    setup_django(args.database)
    _user, _tenant, environment, _host = make_tenant("autoscale")
    started = time.perf_counter()
    populate(environment, args.services, args.containers)
    say(
        f"{args.services} services x {args.containers} containers written in "
        f"{time.perf_counter() - started:.1f}s"
    )
    measure(args.passes)


if __name__ == "__main__":
    main()
