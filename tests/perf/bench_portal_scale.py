"""The portal and the API at the size of a real installation: latency and queries per page.

Seeds rows only (no engine containers) into a PostgreSQL database of its own:
50 tenants, 1,000 stacks (a third of them in tenant `t00`, whose member signs in),
3,000 services, 5,000 container rows (one stack of `t00` has 100 of them), the built-in
catalog plus two private templates per tenant, and 1,000,000 events spread over 400
days (a third of them `t00`'s). Stacks, services and containers go in with
`bulk_create`; the events with one `INSERT ... SELECT` over `generate_series` inside
PostgreSQL, the indexes built after it (about 45 s here, quiet machine).

Then, for each page and API list, as a member of `t00` and as a platform admin:

- the queries of one request, counted in process with Django's test client and
  `CaptureQueriesContext` over the same database (after one warm-up request);
- over HTTP against a real daphne (one process, as `make run` starts it, production
  settings: `DJANGO_DEBUG=false`) on a free loopback port, one keep-alive client:
  median and p95 of `--requests` GETs after a warm-up.

It prints one `RESULT` line per URL and drops the database at the end (also on Ctrl-C).
Needs PostgreSQL on 127.0.0.1; no Docker engine, no Redis traffic.

  .venv/bin/python tests/perf/bench_portal_scale.py [--requests 100] [--events 1000000] \
      [--database berth_bench_portal_scale] [--explain]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

TENANTS = 50
STACKS = 1000
SERVICES_PER_STACK = 3
CONTAINERS = 5000
BIG_STACK_CONTAINERS = 100
MAIN_SHARE = 3  # tenant t00 holds 1/3 of the stacks and of the events
ACTIONS = [
    "stack.create",
    "stack.deploy",
    "stack.reconcile",
    "stack.stop",
    "stack.start",
    "service.scale",
    "container.restart",
    "container.replace",
    "route.create",
    "environment.update",
]
OBJECT_TYPES = ["stack", "stack", "stack", "stack", "stack", "service", "container",
                "container", "route", "environment"]  # fmt: skip


def seed(events: int) -> dict:
    """Every row of the benchmark; returns what the requests need (users, ids)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from apps.accounts.services import create_token
    from apps.catalog.models import Template, TemplateVersion
    from apps.deployments.models import Container, Revision, Service, Stack
    from apps.hosts.models import Host
    from apps.tenants.models import Environment, Membership, Tenant

    started = time.perf_counter()
    call_command("loadcatalog", verbosity=0)
    users = get_user_model().objects
    member = users.create_user(username="member", email="member@example.com")
    admin = users.create_superuser(username="admin", email="admin@example.com")
    host = Host.objects.create(name="bench", endpoint="unix:///nonexistent.sock", state="active")
    with transaction.atomic():
        tenants = Tenant.objects.bulk_create(
            Tenant(slug=f"t{n:02d}", name=f"Tenant {n:02d}") for n in range(TENANTS)
        )
        Membership.objects.bulk_create(
            Membership(tenant=t, user=member, role="member") for t in tenants[:1]
        )
        environments = Environment.objects.bulk_create(
            Environment(tenant=t, slug=slug, name=slug.capitalize())
            for t in tenants
            for slug in ("dev", "prod")
        )
        by_tenant = {t.pk: [e for e in environments if e.tenant_id == t.pk] for t in tenants}
        templates = Template.objects.bulk_create(
            Template(
                slug=f"private-{n}",
                name=f"{t.slug} app {n}",
                category="other",
                publisher=t,
                visibility="public" if n == 0 and t.slug < "t10" else "tenant",
                approval="approved" if n == 0 and t.slug < "t10" else "none",
            )
            for t in tenants
            for n in range(2)
        )
        TemplateVersion.objects.bulk_create(
            TemplateVersion(
                template=t,
                version="1.0.0",
                compose="services: {}\n",
                content_hash="0" * 64,
                review="approved" if t.visibility == "public" else "none",
            )
            for t in templates
        )
        version = TemplateVersion.objects.filter(template__publisher__isnull=True).first()
        main_stacks = STACKS // MAIN_SHARE
        owners = [tenants[0]] * main_stacks + [
            tenants[1 + n % (TENANTS - 1)] for n in range(STACKS - main_stacks)
        ]
        stacks = Stack.objects.bulk_create(
            Stack(
                tenant=owner,
                environment=by_tenant[owner.pk][n % 2],
                name=f"stack-{n:04d}",
                template_version=version if n % 2 else None,
                state="healthy" if n % 7 else "degraded",
                created_by=member if owner == tenants[0] else None,
            )
            for n, owner in enumerate(owners)
        )
        revisions = Revision.objects.bulk_create(
            Revision(stack=s, number=1, spec={"services": {}}, summary="Created") for s in stacks
        )
        for stack, revision in zip(stacks, revisions, strict=True):
            stack.current_revision = revision
        Stack.objects.bulk_update(stacks, ["current_revision"], batch_size=500)
        services = Service.objects.bulk_create(
            Service(stack=s, name=name, image=f"demo/{name}:1.0", scale=1, health="healthy")
            for s in stacks
            for name in ("api", "frontend", "worker")
        )
        big = stacks[0]
        rows = []
        per_stack = (CONTAINERS - BIG_STACK_CONTAINERS) // (STACKS - 1) + 1
        for index, service in enumerate(services):
            count = BIG_STACK_CONTAINERS // SERVICES_PER_STACK + (index == 0)
            if service.stack_id != big.pk:
                count = per_stack if index % SERVICES_PER_STACK == 0 else 1
            for replica in range(1, count + 1):
                rows.append(
                    Container(
                        stack_id=service.stack_id,
                        service=service,
                        host=host,
                        engine_id=f"{len(rows):064x}",
                        name=f"c{service.stack_id}-{service.name}-{replica}",
                        replica=replica,
                        revision=1,
                        image=service.image,
                        state="running",
                        health="healthy",
                    )
                )
        Container.objects.bulk_create(rows[:CONTAINERS], batch_size=1000)
    seeded = time.perf_counter()
    _insert_events(connection, tenants, stacks, member, events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    bench.say(
        f"seeded {len(tenants)} tenants, {len(stacks)} stacks, {len(services)} services, "
        f"{min(len(rows), CONTAINERS)} containers in {seeded - started:.1f}s, {events} events "
        f"in {time.perf_counter() - seeded:.1f}s"
    )
    _, member_token = create_token(actor=member, name="bench")
    _, admin_token = create_token(actor=admin, name="bench")
    return {
        "member": member,
        "admin": admin,
        "member_token": member_token,
        "admin_token": admin_token,
        "big_stack": big.pk,
        "main_tenant": tenants[0].slug,
    }


def _insert_events(connection, tenants, stacks, member, count: int) -> None:
    """`count` events in one statement: a third for t00, the rest spread; one every
    ~35 s over 400 days, newest first in id order like real ones."""
    stacks_of: dict[int, list[int]] = {}
    for stack in stacks:
        stacks_of.setdefault(stack.tenant_id, []).append(stack.pk)
    tenant_ids = [t.pk for t in tenants]
    seconds = 400 * 86400 / max(count, 1)
    with connection.cursor() as cursor:
        # Building the indexes once afterwards is several times faster than keeping
        # them up to date row by row.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'activity_event' "
            "AND indexname NOT LIKE '%%pkey'"
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("CREATE TEMP TABLE bench_tenant (idx int, tenant_id int, stacks int[])")
        cursor.executemany(
            "INSERT INTO bench_tenant VALUES (%s, %s, %s)",
            [(n, pk, stacks_of.get(pk, [0])) for n, pk in enumerate(tenant_ids)],
        )
        cursor.execute(
            """
            INSERT INTO activity_event (tenant_id, actor_id, actor_name, action, object_type,
                object_id, object_repr, outcome, message, data, created_at)
            SELECT t.tenant_id,
                   CASE WHEN t.idx = 0 AND g %% 5 = 0 THEN %(member)s END,
                   CASE WHEN t.idx = 0 AND g %% 5 = 0 THEN 'member' ELSE 'system' END,
                   (%(actions)s::text[])[1 + g %% 10],
                   (%(types)s::text[])[1 + g %% 10],
                   s.stack::text, 'stack-' || s.stack,
                   CASE WHEN g %% 13 = 0 THEN 'failure' ELSE 'success' END,
                   'bench event ' || g,
                   jsonb_build_object('stack', s.stack),
                   now() - make_interval(secs => (%(count)s - g) * %(seconds)s)
            FROM generate_series(1, %(count)s) AS g
            JOIN bench_tenant AS t
              ON t.idx = CASE WHEN g %% 3 = 0 THEN 0 ELSE 1 + (g / 3) %% 49 END
            CROSS JOIN LATERAL (
                SELECT t.stacks[1 + (g / 7) %% array_length(t.stacks, 1)] AS stack
            ) AS s
            """,
            {
                "member": member.pk,
                "actions": ACTIONS,
                "types": OBJECT_TYPES,
                "count": count,
                "seconds": seconds,
            },
        )
        for _name, definition in indexes:
            cursor.execute(definition)


def reuse(database: str) -> dict:
    """Point Django at a database kept by `--keep`, migrate it, and find the ids."""
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.accounts.services import create_token
    from apps.deployments.models import Stack

    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model().objects
    member, admin = users.get(username="member"), users.get(username="admin")
    big = Stack.objects.filter(tenant__slug="t00").order_by("pk").first()
    return {
        "member": member,
        "admin": admin,
        "member_token": create_token(actor=member, name="bench")[1],
        "admin_token": create_token(actor=admin, name="bench")[1],
        "big_stack": big.pk,
        "main_tenant": "t00",
    }


def pages(ids: dict) -> list[tuple[str, str, str]]:
    """(who, kind, path): kind `page` goes with the session cookie, `api` with a token."""
    big = ids["big_stack"]
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
    member = [
        ("member", "page", "/"),
        ("member", "page", "/stacks/"),
        ("member", "page", "/stacks/?page=3"),
        ("member", "page", f"/stacks/{big}/"),
        ("member", "page", f"/stacks/{big}/status/"),  # what the live page fetches on events
        ("member", "page", "/activity/"),
        ("member", "page", "/activity/?action=stack.deploy"),
        ("member", "page", "/activity/?object_type=container&outcome=failure"),
        ("member", "page", f"/activity/?since={since}&actor=member"),
        ("member", "page", "/activity/?page=200"),
        ("member", "page", "/catalog/"),
        ("member", "api", "/api/v1/stacks/"),
        ("member", "api", f"/api/v1/stacks/{big}/"),
        ("member", "api", f"/api/v1/services/?stack={big}"),
        ("member", "api", "/api/v1/events/"),
        ("member", "api", "/api/v1/events/?action=stack.deploy&outcome=failure"),
        ("member", "api", f"/api/v1/events/?since={since}&object_type=container"),
        ("member", "api", "/api/v1/templates/"),
    ]
    admin = [
        ("admin", "page", "/"),
        ("admin", "page", "/activity/all/"),
        ("admin", "page", f"/activity/all/?tenant={ids['main_tenant']}&action=stack.stop"),
        ("admin", "page", "/catalog/"),
        ("admin", "api", "/api/v1/stacks/"),
        ("admin", "api", "/api/v1/events/"),
        ("admin", "api", "/api/v1/templates/"),
    ]
    return member + admin


def count_queries(ids: dict, targets) -> dict[str, tuple[int, int]]:
    """Queries and status of one request per target, in process (after a warm-up)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for who in ("member", "admin"):
        page, api = Client(), Client(HTTP_AUTHORIZATION=f"Bearer {ids[who + '_token']}")
        page.force_login(ids[who])
        clients[who, "page"], clients[who, "api"] = page, api
    found = {}
    for who, kind, path in targets:
        client = clients[who, kind]
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(path)
        found[who, path] = (len(queries), answer.status_code)
        bench.say(f"  {who:6} {path:60} {len(queries):3} queries (status {answer.status_code})")
        if os.environ.get("BENCH_SHOW_QUERIES"):
            for query in queries.captured_queries:
                bench.say(f"    {query['time']}s {query['sql'][:300]}")
    return found


def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def timed(session, url: str, headers: dict, total: int) -> list[float]:
    latencies = []
    for _ in range(total):
        started = time.perf_counter()
        answer = session.get(url, headers=headers, timeout=60, allow_redirects=False)
        latencies.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
    return latencies


def explain(ids: dict) -> None:
    """The plans of the activity filters on the full events table."""
    from django.db import connection

    from apps.activity.filters import EventFilterSet
    from apps.activity.models import Event
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(slug=ids["main_tenant"])
    cases = {
        "tenant, newest": {},
        "tenant + action": {"action": "stack.deploy"},
        "tenant + object_type + outcome": {"object_type": "container", "outcome": "failure"},
        "tenant + since + actor": {"since": "2026-11-01", "actor": "member"},
    }
    for name, params in cases.items():
        events = EventFilterSet(params, Event.objects.filter(tenant=tenant)).qs[:25]
        sql, args = events.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql, args)
            plan = [row[0] for row in cursor.fetchall()]
        bench.say(f"EXPLAIN {name}:")
        for line in plan:
            bench.say(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", default="berth_bench_portal_scale")
    parser.add_argument("--explain", action="store_true", help="print the activity plans")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="use a kept database")
    parser.add_argument("--only", default="", help="only paths containing this text")
    args = parser.parse_args()
    bench.install_cleanup()
    if args.reuse:
        ids = reuse(args.database)
    else:
        bench.setup_django(args.database)
        ids = seed(args.events)
    if args.keep:
        bench._cleanups.clear()
    if args.explain:
        explain(ids)
    targets = [t for t in pages(ids) if args.only in t[2]]
    queries = count_queries(ids, targets)

    import requests
    from django.db import connections

    cookies = {who: session_cookie(ids[who]) for who in ("member", "admin")}
    connections.close_all()
    from bench_asgi_requests import cpu_seconds, free_port

    port = free_port()
    logs = bench.REPO / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    daphne = bench.start_daphne(
        port,
        logs / "bench-portal-scale-daphne.log",
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    base = f"http://127.0.0.1:{port}"
    bench.wait_http(base + "/accounts/login/")
    bench.say(f"daphne on 127.0.0.1:{port} (DEBUG off); {args.requests} requests per URL")
    session = requests.Session()
    worst = 0.0
    for who, kind, path in targets:
        if kind == "page":
            headers = {"Cookie": f"sessionid={cookies[who]}"}
        else:
            headers = {"Authorization": f"Bearer {ids[who + '_token']}"}
        timed(session, base + path, headers, 2)
        cpu = cpu_seconds(daphne.pid)
        latencies = timed(session, base + path, headers, args.requests)
        cpu = (cpu_seconds(daphne.pid) - cpu) / args.requests * 1000
        count, status = queries[who, path]
        p95 = bench.p95(latencies) * 1000
        worst = max(worst, p95)
        bench.say(
            f"RESULT {who:6} {path:60} p50 {bench.median(latencies) * 1000:6.1f} ms  "
            f"p95 {p95:6.1f} ms  daphne CPU {cpu:5.1f} ms  {count:3} queries (status {status})"
        )
    bench.say(f"RESULT worst p95 {worst:.1f} ms over {len(targets)} URLs")


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
