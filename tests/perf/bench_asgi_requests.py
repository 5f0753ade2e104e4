"""Plain requests under daphne: latency and requests per second of a signed-in page and an
API GET, to see what the middleware chain costs under ASGI.

Django runs the middleware chain in async mode under daphne only when every middleware
is async-capable; one sync-only middleware makes Django hand the request between the
event loop and a thread where the modes change. This script prints, per scenario:

- the hand-offs per request, counted in process with Django's AsyncClient (the same
  ASGI handler and chain): `sync_to_async` calls (loop -> thread) and `async_to_sync`
  calls (thread -> loop), as asgiref counts them;
- over HTTP against a real daphne (one process, as `make run` starts it) on a free
  loopback port, over a database of its own: median and p95 latency, requests/s and
  daphne's CPU time per request (steadier than latency on a busy machine), first with
  one client, then with `--threads` clients (keep-alive sessions each).

Scenarios: `page` is a small signed-in page (`/monitoring/`, session cookie of a real
session row, the current tenant chosen by the middleware); `api` is `GET
/api/v1/tenants/` with a Bearer API token (no session: the middleware finds no user).

Run from the repo root:
  .venv/bin/python tests/perf/bench_asgi_requests.py [--requests 500] [--threads 4]
Needs PostgreSQL on 127.0.0.1. Prints one RESULT line per scenario and client count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402

DATABASE = "berth_bench_asgi"
PAGE = "/monitoring/"
API = "/api/v1/tenants/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_user() -> tuple[str, str]:
    """A user in two tenants (so the middleware has a choice to make), signed in once:
    returns the session key and an API token."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.accounts.services import create_token
    from apps.tenants import services as tenant_services

    user = get_user_model().objects.create_user(
        username=f"bench-{bench.RUN_ID}", email=f"b{bench.RUN_ID}@example.com"
    )
    for n in range(2):
        tenant_services.create_tenant(actor=user, slug=f"as{n}{bench.RUN_ID}", name=f"Bench {n}")
    client = Client()
    client.force_login(user)
    _, api_token = create_token(actor=user, name="bench")
    return client.cookies["sessionid"].value, api_token


def headers_for(scenario: str, session_key: str, api_token: str) -> dict[str, str]:
    if scenario == "page":
        return {"Cookie": f"sessionid={session_key}"}
    return {"Authorization": f"Bearer {api_token}"}


def count_handoffs(
    path: str, scenario: str, session_key: str, api_token: str
) -> tuple[Counter, str]:
    """Hand-offs of one request through Django's ASGI handler (after one warm-up), and
    whether the chain runs in async mode."""
    from asgiref import sync
    from django.test import AsyncClient

    counts: Counter = Counter()
    originals = {cls: cls.__call__ for cls in (sync.SyncToAsync, sync.AsyncToSync)}

    def counting(cls):
        original = originals[cls]

        def call(self, *args, **kwargs):
            counts[cls.__name__] += 1
            return original(self, *args, **kwargs)

        return call

    async def two_requests() -> str:
        client = AsyncClient()
        headers = {}
        if scenario == "page":
            client.cookies["sessionid"] = session_key
        else:
            headers["authorization"] = f"Bearer {api_token}"
        await client.get(
            path, headers=headers
        )  # warm-up: the handler loads its middleware on first use
        counts.clear()
        for cls in originals:
            cls.__call__ = counting(cls)
        try:
            answer = await client.get(path, headers=headers)
        finally:
            for cls, original in originals.items():
                cls.__call__ = original
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code}")
        return chain_mode()

    mode = asyncio.run(two_requests())
    return counts, mode


def chain_mode() -> str:
    """'async' when Django runs the outermost middleware itself in async mode under ASGI,
    'sync' when it runs the chain in a thread."""
    from asgiref.sync import SyncToAsync
    from django.core.handlers.asgi import ASGIHandler

    chain = ASGIHandler()._middleware_chain
    return "sync" if isinstance(chain, SyncToAsync) else "async"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far: less noisy than latency on a busy
    machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, headers: dict[str, str], total: int, workers: int, pid: int):
    """(requests/s, median s, p95 s, daphne CPU s per request) of `total` GETs spread
    over `workers` threads."""
    import requests

    sessions: dict[int, requests.Session] = {}

    def one(_: int) -> float:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        started = time.perf_counter()
        answer = session.get(url, headers=headers, timeout=30, allow_redirects=False)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
        return elapsed

    with ThreadPoolExecutor(workers) as pool:  # warm-up: imports, pool connections
        list(pool.map(one, range(max(20, 5 * workers))))
    cpu, started = cpu_seconds(pid), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        latencies = list(pool.map(one, range(total)))
    wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    return total / wall, bench.median(latencies), bench.p95(latencies), cpu / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the HTTP measurements")
    args = parser.parse_args()
    bench.install_cleanup()
    bench.setup_django(DATABASE)
    session_key, api_token = make_user()
    from django.conf import settings

    scenarios = {"page": PAGE, "api": API}
    for scenario, path in scenarios.items():
        counts, mode = count_handoffs(path, scenario, session_key, api_token)
        bench.say(
            f"{scenario} {path}: middleware chain {mode}; hand-offs per request: "
            f"{counts['SyncToAsync']} sync_to_async, {counts['AsyncToSync']} async_to_sync"
        )

    logs = bench.REPO / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    daphne = bench.start_daphne(port, logs / "bench-asgi-daphne.log")
    base = f"http://127.0.0.1:{port}"
    bench.wait_http(base + "/accounts/login/")
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    bench.say(
        f"daphne on 127.0.0.1:{port}; DEBUG={settings.DEBUG}; database connections: "
        f"{'pool' if pool else 'a new one per request'}; {args.requests} requests each"
    )
    for round_ in range(1, args.rounds + 1):
        for scenario, path in scenarios.items():
            headers = headers_for(scenario, session_key, api_token)
            for workers in (1, args.threads):
                rps, med, p95, cpu = measure(
                    base + path, headers, args.requests, workers, daphne.pid
                )
                bench.say(
                    f"RESULT {scenario} GET {path} ({workers} client{'s' * (workers > 1)}, "
                    f"round {round_}): {rps:.0f} req/s, median {med * 1000:.2f} ms, "
                    f"p95 {p95 * 1000:.2f} ms, daphne CPU {cpu * 1000:.2f} ms/request"
                )


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
