"""Registry token issuance: requests per second and p95 latency of GET /registry/token/.

A real daphne (one process, as `make run` starts it) on a free loopback port over a
database of its own; clients in threads, each with a keep-alive session. Measured per
credential kind, every request asking `repository:<tenant>/web:pull,push`:

- robot:     `robot$<tenant>+ci` and its secret (sha256 lookup)
- api-token: a user with one of their API tokens as the password (sha256 lookup)
- password:  the same user's password (Django's PBKDF2: deliberately slow)

Run from the repo root:
  .venv/bin/python tests/perf/bench_registry_tokens.py [--requests 400] [--concurrency 8]
Needs PostgreSQL and Redis on 127.0.0.1. Prints one RESULT line per kind.
"""

from __future__ import annotations

import argparse
import base64
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

DATABASE = "berth_bench_tokens"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_credentials() -> dict[str, tuple[str, str]]:
    from django.contrib.auth import get_user_model

    from apps.accounts.services import create_token
    from apps.registry.services import create_robot
    from apps.tenants import services as tenant_services

    password = "bench-" + bench.RUN_ID * 3
    user = get_user_model().objects.create_user(
        username=f"bench-{bench.RUN_ID}", email=f"b{bench.RUN_ID}@example.com", password=password
    )
    tenant = tenant_services.create_tenant(actor=user, slug=f"tk{bench.RUN_ID}", name="Bench")
    _, robot_secret = create_robot(actor=user, tenant=tenant, name="ci", scope="push")
    _, api_token = create_token(actor=user, name="bench")
    return {
        "robot": (f"robot${tenant.slug}+ci", robot_secret),
        "api-token": (user.username, api_token),
        "password": (user.username, password),
        "_tenant": (tenant.slug, ""),
    }


def queries_per_request(creds: tuple[str, str], scope: str) -> int:
    """Database queries of one token request, in process (the credential used just before,
    so a last-use write within the minute is not counted, as for a CI job's requests)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    params = {"service": "berth-registry", "scope": scope}
    auth = "Basic " + base64.b64encode(":".join(creds).encode()).decode()
    client.get("/registry/token/", params, HTTP_AUTHORIZATION=auth)
    with CaptureQueriesContext(connection) as captured:
        answer = client.get("/registry/token/", params, HTTP_AUTHORIZATION=auth)
    if answer.status_code != 200:
        raise RuntimeError(f"token request failed: {answer.status_code}")
    return len(captured.captured_queries)


def measure(url: str, creds: tuple[str, str], scope: str, total: int, workers: int):
    import requests

    sessions: dict[int, requests.Session] = {}

    def one(_: int) -> float:
        import threading

        session = sessions.setdefault(threading.get_ident(), requests.Session())
        started = time.perf_counter()
        answer = session.get(
            url, params={"service": "berth-registry", "scope": scope}, auth=creds, timeout=30
        )
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or "token" not in answer.json():
            raise RuntimeError(f"token request failed: {answer.status_code} {answer.text[:200]}")
        return elapsed

    for _ in range(min(20, total)):  # warm up: imports, connections, key cache
        one(0)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        latencies = list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    return total / wall, bench.median(latencies), bench.p95(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--password-requests", type=int, default=40)
    args = parser.parse_args()
    bench.install_cleanup()
    bench.setup_django(DATABASE)
    creds = make_credentials()
    tenant = creds.pop("_tenant")[0]
    logs = bench.REPO / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    bench.start_daphne(port, logs / "daphne.log")
    url = f"http://127.0.0.1:{port}/registry/token/"
    import requests

    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url, timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    from django.conf import settings

    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    bench.say(
        f"daphne on 127.0.0.1:{port}; {args.concurrency} client threads; database "
        f"connections: {'pool ' + str(pool) if pool else 'a new one per request'}"
    )
    scope = f"repository:{tenant}/web:pull,push"
    for kind, pair in creds.items():
        total = args.password_requests if kind == "password" else args.requests
        queries = queries_per_request(pair, scope)
        rps, med, p95 = measure(url, pair, scope, total, args.concurrency)
        bench.say(
            f"RESULT token issuance ({kind}, {total} requests): {rps:.0f} req/s, "
            f"median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {queries} queries/request"
        )


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
