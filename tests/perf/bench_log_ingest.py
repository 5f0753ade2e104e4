"""Central logs: collector ingestion against `docker logs`, and search latency at scale.

Figures, printed (a benchmark never asserts on time):

1. Ingestion: `--containers` containers each print `--lines` lines (`yes | head`), then
   sleep. `docker logs -t` (the CLI, output to /dev/null) reads each log in full, one
   container after the other; then one collector pass (`apps.logs.collector`, the same
   code the Celery task runs) stores them all in PostgreSQL (with the generated tsvector
   and its GIN index); then `docker logs` again. Lines per second of each and the ratio
   collector / docker logs (the median of the two CLI runs); goal >= 0.5. Then, with
   nothing new, a pass reading each log with `since` against one reading its tail
   first (BERTH_LOG_TAIL_LINES). Then the containers are stopped: a pass that re-reads
   their logs (`ended` cleared) against one that skips them.
2. Search: synthetic lines inserted in bulk (one INSERT ... SELECT generate_series,
   half for another tenant) up to 100 thousand, then up to 1 million stored lines; at
   each size `--queries` searches of each kind as the tenant's owner sees them through
   the API's own code (`visible_to`, `LogFilterSet`, the newest 100 of a keyset page):
   a common word, a rare word, two words, a filter without words, a word with a stream
   filter. p50 and p95 per kind, and p95 of all.

Run from the repo root:
  .venv/bin/python tests/perf/bench_log_ingest.py [--containers 4] [--lines 100000]
      [--queries 30] [--sizes 100000,1000000]
Needs the engine at /var/run/docker.sock, PostgreSQL on 127.0.0.1 and the demo images
(deploy/build-images.sh). A database of its own (berth_bench_log_ingest), dropped at the
end; its containers carry the run's tenant label and are removed at exit.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_log_ingest"
IMAGE = "berth-demo/worker:1.0"
LINE = "GET /api/orders 200 12ms user=alice " + "x" * 30  # ~70 bytes
WORDS = ["payment", "login", "timeout", "cache", "refused", "order", "retry", "shipped"]


def start_containers(tenant, environment, count: int, lines: int) -> list[str]:
    from apps.deployments import containers as naming
    from apps.hosts.engine import INSTALLATION_LABEL, MANAGED_LABEL, installation_id

    ids = []
    for index in range(count):
        ids.append(
            bench.docker(
                "run",
                "-d",
                "--name",
                f"berth-bench-ingest-{bench.RUN_ID}-{index}",
                "--label",
                f"{MANAGED_LABEL}=true",
                "--label",
                f"{INSTALLATION_LABEL}={installation_id()}",
                "--label",
                f"io.berth.tenant={tenant.slug}",
                "--label",
                f"{naming.TENANT_ID}={tenant.pk}",
                "--label",
                f"{naming.ENVIRONMENT_ID}={environment.pk}",
                "--label",
                f"{naming.SERVICE}=flood{index}",
                "--log-driver",
                "json-file",
                "--log-opt",
                "max-size=200m",
                "--entrypoint",
                "/bin/sh",
                IMAGE,
                "-c",
                f'yes "{LINE}" | head -n {lines}; echo DONE; sleep 86400',
            )  # fmt: skip
        )
    for cid in ids:
        deadline = time.monotonic() + 300
        while "DONE" not in bench.docker("logs", "--tail", "1", cid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cid[:12]} did not finish printing")
            time.sleep(0.5)
    time.sleep(1.5)  # past the collector's settle time
    return ids


def docker_logs_seconds(ids: list[str]) -> float:
    started = time.perf_counter()
    for cid in ids:
        subprocess.run(
            ["docker", "logs", "-t", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return time.perf_counter() - started


def ingestion(args, tenant, environment, host) -> None:
    from apps.logs import collector
    from apps.logs.models import LogLine

    ids = start_containers(tenant, environment, args.containers, args.lines)
    total = args.containers * (args.lines + 1)
    first = docker_logs_seconds(ids)
    started = time.perf_counter()
    result = collector.collect_host(host.pk, only=ids)
    collected = time.perf_counter() - started
    second = docker_logs_seconds(ids)
    stored = LogLine.objects.filter(source__engine_id__in=ids).count()
    raw = total / bench.median([first, second])
    mine = result.lines / collected
    say(f"docker logs -t: {first:.2f}s and {second:.2f}s for {total} lines")
    say(f"collector: {collected:.2f}s, {result.lines} lines stored ({stored} in the table)")
    say(
        f"RESULT ingest docker_logs={raw:,.0f} lines/s collector={mine:,.0f} lines/s "
        f"ratio={mine / raw:.2f} (goal >= 0.5)"
    )
    idle_passes(host, ids)
    stopped_passes(host, ids)
    for cid in ids:
        bench.docker("rm", "-f", cid, check=False)
    LogLine.objects.filter(source__engine_id__in=ids).delete()  # the search sizes are synthetic


def idle_passes(host, ids: list[str]) -> None:
    """The same containers running with nothing new: a pass reading each log with
    `since` (the engine decodes the whole file) against one reading its tail first."""
    from django.conf import settings

    from apps.logs import collector

    def timed() -> float:
        started = time.perf_counter()
        result = collector.collect_host(host.pk, only=ids)
        assert result.lines == 0 and not result.errors, result
        return time.perf_counter() - started

    default = settings.BERTH_LOG_TAIL_LINES
    since, tail = [], []
    for _ in range(3):
        settings.BERTH_LOG_TAIL_LINES = 0
        since.append(timed())
        settings.BERTH_LOG_TAIL_LINES = default
        tail.append(timed())
    say(
        f"RESULT idle {len(ids)} containers: a pass reading with since "
        f"{bench.median(since) * 1000:,.0f} ms, from the tail {bench.median(tail) * 1000:,.0f} ms"
    )


def stopped_passes(host, ids: list[str]) -> None:
    """The same containers stopped: the first pass reads them to the end and records the
    ended run; a pass that re-reads them anyway (`ended` cleared: what every pass did
    before) against one that skips them (one inspect call each)."""
    from apps.logs import collector
    from apps.logs.models import LogSource

    for cid in ids:
        bench.docker("stop", "-t", "1", cid)

    def timed() -> tuple[float, collector.PassResult]:
        started = time.perf_counter()
        result = collector.collect_host(host.pk, only=ids)
        return time.perf_counter() - started, result

    first, result = timed()
    say(f"stopped: first pass {first:.2f}s ({result.lines} lines, {result.ended} skipped)")
    rereads, skips = [], []
    for _ in range(3):
        LogSource.objects.filter(engine_id__in=ids).update(ended="")
        rereads.append(timed()[0])
        seconds, result = timed()
        assert result.ended == len(ids) and result.lines == 0, result
        skips.append(seconds)
    reread, skip = bench.median(rereads) * 1000, bench.median(skips) * 1000
    say(
        f"RESULT stopped {len(ids)} containers: a pass re-reading them {reread:,.0f} ms, "
        f"skipping them {skip:,.0f} ms"
    )


def fill(environment, other_environment, up_to: int) -> None:
    """Synthetic lines in bulk until the table holds `up_to` rows (half are another
    tenant's), one day of timestamps, words from WORDS."""
    from django.db import connection

    from apps.logs.models import LogLine, LogSource

    have = LogLine.objects.count()
    if have >= up_to:
        return
    need = up_to - have
    sources = []
    for env in (environment, other_environment):
        source, _ = LogSource.objects.get_or_create(
            engine_id=f"synthetic-{env.pk}",
            defaults=dict(tenant=env.tenant, environment=env, stack="shop", container="shop-1"),
        )
        sources.append(source)
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for source in sources:
            cursor.execute(
                f"""
                INSERT INTO logs_logline
                    (source_id, tenant_id, environment_id, stack, service, container,
                     stream, ts, text)
                SELECT %s, %s, %s, 'shop', 'svc' || (i %% 5), 'shop-1',
                       CASE WHEN i %% 10 = 0 THEN 'stderr' ELSE 'stdout' END,
                       now() - (i %% 86400) * interval '1 second',
                       'req ' || i || ' ' || ({words})[1 + i %% 8] || ' user=u' || (i %% 977)
                       || CASE WHEN i %% 1000 = 7 THEN ' rarebird' ELSE '' END
                FROM generate_series(%s, %s) AS i
                """,  # noqa: S608 - our constants only
                [source.pk, source.tenant_id, source.environment_id, have + 1, have + need // 2],
            )
        cursor.execute("ANALYZE logs_logline")
    count = LogLine.objects.count()
    say(f"filled to {count:,} lines in {time.perf_counter() - started:.1f}s")


def searches(user, queries: int) -> None:
    from django.http import QueryDict

    from apps.logs import pages
    from apps.logs.filters import LogFilterSet
    from apps.logs.models import LogLine

    kinds = {
        "common word": lambda: {"q": random.choice(WORDS)},
        "rare word": lambda: {"q": "rarebird"},
        "two words": lambda: {"q": f"{random.choice(WORDS)} u{random.randrange(977)}"},
        "filter only": lambda: {"service": f"svc{random.randrange(5)}"},
        "word+stream": lambda: {"q": random.choice(WORDS), "stream": "stderr"},
    }
    every = []
    for name, make in kinds.items():
        times = []
        for _ in range(queries):
            params = QueryDict(mutable=True)
            params.update(make())
            started = time.perf_counter()
            found = LogFilterSet(params, LogLine.objects.visible_to(user))
            assert found.is_valid(), found.errors
            page = pages.newest_first(found.qs, None, 100)
            times.append((time.perf_counter() - started) * 1000)
            assert page.lines or name in ("rare word", "word+stream")
        every += times
        say(f"  {name:12s} p50 {bench.median(times):7.1f} ms  p95 {bench.p95(times):7.1f} ms")
    say(f"  all          p95 {bench.p95(every):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    bench.install_cleanup()
    bench.require_engine()
    bench.require_images([IMAGE])
    bench.setup_django(DATABASE)
    from apps.hosts.models import Host
    from apps.tenants import services as tenant_services

    user, tenant, environment, host = bench.make_tenant("ingest")
    Host.objects.filter(pk=host.pk).update(state=Host.State.ACTIVE)
    other = tenant_services.create_tenant(actor=user, slug=f"other{bench.RUN_ID}", name="Other")
    from apps.tenants.models import Membership

    Membership.objects.filter(tenant=other, user=user).delete()  # not the owner's to see
    try:
        if not args.skip_ingest:
            ingestion(args, tenant, environment, host)
        other_env = other.environments.order_by("pk").first()
        for size in (int(s) for s in args.sizes.split(",") if s):  # "": no search
            fill(environment, other_env, size)
            say(f"search over {size:,} stored lines ({args.queries} queries per kind):")
            searches(user, args.queries)
    finally:
        bench.run_cleanups()


if __name__ == "__main__":
    main()
