"""One alert evaluation pass at size: its time and queries as the rows grow.

Seeds rows only (no engine) into a PostgreSQL database of its own: one tenant per 100
containers, each container with the last minute of raw samples (six rows), and per
tenant four rules (CPU above 80 % for 60 s, memory above 90 % of the limit, restarts,
flapping). Half the containers are busy, so half the CPU rules' subjects open alerts.
For each size it prints the median time of a pass (after one pass that opens the
alerts) and the queries of one pass; the query count should not change with the size.

  .venv/bin/python tests/perf/bench_alerts_pass.py [--sizes 100,1000,5000] [--passes 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402


def seed(containers: int, now) -> None:
    from django.contrib.auth import get_user_model

    from apps.alerts import services
    from apps.monitoring.models import ContainerSample, Series
    from apps.tenants import services as tenant_services

    user = get_user_model().objects.create_user(username=f"bench-{containers}", password="x")
    rules = [
        {
            "name": "cpu",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
            "duration_seconds": 60,
        },
        {
            "name": "mem",
            "kind": "metric",
            "metric": "memory_percent",
            "comparison": "gt",
            "threshold": 90,
        },
        {"name": "restarts", "kind": "restarts", "threshold": 3, "window_seconds": 600},
        {"name": "flapping", "kind": "flapping", "threshold": 4, "window_seconds": 600},
    ]
    for t in range(max(containers // 100, 1)):
        tenant = tenant_services.create_tenant(actor=user, slug=f"b{containers}-{t}", name="b")
        env = tenant.environments.order_by("pk").first()
        for rule in rules:
            services.create_rule(user, tenant, rule)
        series = Series.objects.bulk_create(
            Series(
                kind=Series.Kind.CONTAINER,
                key=f"c{containers}:{t}:{i}",
                tenant=tenant,
                environment_pk=env.pk,
                stack_name="s",
                service_name="web",
                name=f"w{i}",
                first_seen_at=now,
                last_seen_at=now,
            )
            for i in range(min(100, containers))
        )
        ContainerSample.objects.bulk_create(
            ContainerSample(
                series=s,
                tier=0,
                at=now - timedelta(seconds=10 * k),
                cpu_percent=95.0 if i % 2 else 5.0,
                memory_bytes=10,
                memory_limit_bytes=100,
                health=2,
            )
            for i, s in enumerate(series)
            for k in range(6)
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--database", default="berth_bench_alerts")
    args = parser.parse_args()
    bench.install_cleanup()
    try:
        bench.setup_django(args.database)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from apps.alerts.evaluation import evaluate
        from apps.alerts.models import Alert, AlertRule
        from apps.monitoring.models import ContainerSample, Series

        for size in (int(s) for s in args.sizes.split(",")):
            Alert.objects.all().delete()
            AlertRule.objects.all().delete()
            ContainerSample.objects.all().delete()
            Series.objects.all().delete()
            now = timezone.now().replace(microsecond=0)
            seed(size, now)
            evaluate(now, send=False)
            times = []
            for n in range(args.passes):
                started = time.perf_counter()
                with CaptureQueriesContext(connection) as captured:
                    evaluate(now + timedelta(seconds=n + 1), send=False)
                times.append(time.perf_counter() - started)
            median_ms = bench.median(times) * 1000
            bench.say(
                f"RESULT {size:6} containers, {AlertRule.objects.count():4} rules, "
                f"{Alert.objects.count():6} alerts: pass median {median_ms:8.1f} ms, "
                f"{len(captured)} queries"
            )
    finally:
        bench.run_cleanups()


if __name__ == "__main__":
    main()
