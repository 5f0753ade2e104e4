"""The Monitoring charts at a week of history: how long a 7-day chart takes to load.

Seeds rows only (no engine) into a PostgreSQL database of its own: one tenant, one stack
of `--containers` containers (default 20) and a second one of 100, each container with a
full set of samples in every tier the default BERTH_METRICS_TIERS keeps for a week
(10 s for a day, 1 min for a week, 10 min for the week again: what a week of collecting
and rolling up leaves), and one route with a week of frontier samples.

Then, against a real daphne (one process, production settings) on a free loopback port,
signed in as the tenant's member: median and p95 over `--requests` GETs of the chart
JSON of each stack for 1h, 24h and 7d, of the stack's Monitoring page (HTML), and the
queries of one request (in process, Django's test client). Prints one RESULT line per
URL; the database is dropped at the end (also on Ctrl-C). Needs PostgreSQL on 127.0.0.1.

  .venv/bin/python tests/perf/bench_charts.py [--containers 20] [--requests 30]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

DAY, WEEK = 86400, 7 * 86400


def seed_stack(tenant, environment, host, name: str, containers: int, now) -> object:
    from apps.deployments.models import Container, Route, Service, Stack
    from apps.monitoring.models import ContainerSample, RouteSample, Series

    stack = Stack.objects.create(tenant=tenant, environment=environment, name=name)
    web = Service.objects.create(stack=stack, name="web", image="demo/web:1.0", scale=containers)
    rows = Container.objects.bulk_create(
        Container(stack=stack, service=web, host=host, engine_id=f"{name}-{i}",
                  name=f"{name}-web-{i}", replica=i, state="running")
        for i in range(containers)
    )  # fmt: skip
    route = Route.objects.create(
        tenant=tenant, stack=stack, service=web, hostname=f"{name}.bench.test", port=8080
    )
    common = dict(tenant=tenant, tenant_slug=tenant.slug, environment_pk=environment.pk,
                  stack_pk=stack.pk, stack_name=name, host_pk=host.pk,
                  first_seen_at=now - timedelta(seconds=WEEK), last_seen_at=now)  # fmt: skip
    series = Series.objects.bulk_create(
        [Series(kind=Series.Kind.CONTAINER, key=f"c{host.pk}:{c.engine_id}", service_name="web",
                container_pk=c.pk, name=c.name, **common) for c in rows]
        + [Series(kind=Series.Kind.ROUTE, key=f"r{route.pk}", service_name="web",
                  route_pk=route.pk, name=route.hostname, **common)]
    )  # fmt: skip
    samples = []
    for tier, step, span in ((0, 10, DAY), (1, 60, WEEK), (2, 600, WEEK)):
        for s in series:
            for i in range(span // step):
                at = now - timedelta(seconds=span - i * step)
                if s.kind == Series.Kind.ROUTE:
                    samples.append(RouteSample(series=s, tier=tier, at=at, requests=i * step * 3,
                                               errors=i, latency_ms=12.0 + i % 5))  # fmt: skip
                else:
                    samples.append(
                        ContainerSample(
                            series=s,
                            tier=tier,
                            at=at,
                            cpu_percent=5.0 + i % 20,
                            memory_bytes=(30 + i % 7) * 2**20,
                            memory_limit_bytes=256 * 2**20,
                            net_rx_bytes=i * step * 2000,
                            net_tx_bytes=i * step * 900,
                            block_read_bytes=i * 4096,
                            block_write_bytes=i * 8192,
                            restarts=1 if i == 100 else 0,
                        )  # fmt: skip
                    )
            if len(samples) > 50_000:
                _flush(samples)
    _flush(samples)
    return stack


def _flush(samples: list) -> None:
    from apps.monitoring.models import ContainerSample, RouteSample

    for model in (ContainerSample, RouteSample):
        model.objects.bulk_create([s for s in samples if isinstance(s, model)], batch_size=5000)
    samples.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database", default="berth_bench_charts")
    args = parser.parse_args()
    bench.install_cleanup()
    try:
        run(args)
    finally:
        bench.run_cleanups()


def run(args) -> None:
    bench.setup_django(args.database)
    import requests
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.hosts.models import Host
    from apps.tenants import services as tenant_services

    user = get_user_model().objects.create_user(username=f"bench{bench.RUN_ID}")
    tenant = tenant_services.create_tenant(actor=user, slug=f"ch{bench.RUN_ID}", name="Charts")
    environment = tenant.environments.order_by("pk").first()
    host = Host.objects.create(name=f"bench-{bench.RUN_ID}", endpoint="unix:///nowhere.sock")
    now = timezone.now().replace(microsecond=0)
    started = time.perf_counter()
    stacks = [
        seed_stack(tenant, environment, host, "small", args.containers, now),
        seed_stack(tenant, environment, host, "big", 100, now),
    ]
    from apps.monitoring.models import ContainerSample

    bench.say(
        f"seeded {ContainerSample.objects.count():,} container samples in "
        f"{time.perf_counter() - started:.0f}s"
    )
    urls = []
    for stack, count in zip(stacks, (args.containers, 100), strict=True):
        for range_name in ("1h", "24h", "7d"):
            urls.append((f"stack of {count}, {range_name} JSON",
                         f"/monitoring/charts/stack/{stack.pk}/?range={range_name}"))  # fmt: skip
        urls.append((f"stack of {count}, 7d page", f"/monitoring/?of=stack:{stack.pk}&range=7d"))

    client = Client()
    client.force_login(user)
    queries = {}
    for label, url in urls:
        client.get(url)
        with CaptureQueriesContext(connection) as seen:
            assert client.get(url).status_code == 200, url
        queries[label] = len(seen.captured_queries)

    port = free_port()
    bench.start_daphne(
        port,
        Path("/tmp") / f"bench_charts_{bench.RUN_ID}.log",
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    bench.wait_http(f"http://127.0.0.1:{port}/accounts/login/")
    session = requests.Session()
    session.headers["Cookie"] = f"sessionid={client.cookies['sessionid'].value}"
    for label, url in urls:
        session.get(f"http://127.0.0.1:{port}{url}")  # warm-up
        times, size = [], 0
        for _ in range(args.requests):
            t0 = time.perf_counter()
            response = session.get(f"http://127.0.0.1:{port}{url}")
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            size = len(response.content)
        bench.say(
            f"RESULT {label:28s} median {bench.median(times):6.1f} ms  p95 "
            f"{bench.p95(times):6.1f} ms  {size / 1024:6.0f} KiB  {queries[label]} queries"
        )


if __name__ == "__main__":
    main()
