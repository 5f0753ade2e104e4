"""One tenant's slow engine calls never hold every worker: real Celery workers (a
`celery worker` subprocess with two processes, on the test database and its own queue),
the real engine.

Tenant A stops two stacks whose process ignores SIGTERM, so each stop waits out its whole
grace period; right after, tenant B deploys. Without the per-tenant bound both workers
sit in A's stops and B's deploy waits for them; with it, B's deploy is done while A's
containers are still waiting to be killed, and A's second stop still happens (its task is
queued again until A has a slot).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from apps.core.queue import slots_key
from apps.deployments import reconciler, services
from apps.deployments.models import Stack
from apps.tenants import services as tenant_services
from tests.fixtures.engine import _cleanup, engine_containers, make_stack
from tests.worker_process import stop, wait_ready

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

GRACE = 15
SLOW = f"""
services:
  app:
    image: ${{IMAGE}}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    stop_grace_period: {GRACE}s
"""
QUICK = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""
QUEUE = f"fairness-{uuid.uuid4().hex[:8]}"


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    netloc = (
        f"{auth}@" if auth else ""
    ) + f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{netloc}/{db['NAME']}"


def _clear_queue() -> None:
    """Only this module's queue and bindings: other runs may share the Redis database."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{QUEUE}*"):
        client.delete(key)
    for key in client.scan_iter("_kombu.binding.*"):
        for member in client.smembers(key):
            if QUEUE.encode() in member:
                client.srem(key, member)


@pytest.fixture
def fairness_worker(transactional_db, tmp_path: Path) -> Iterator[Path]:
    """`celery -A paas worker --concurrency 2` consuming this module's own queue; this
    process sends its tasks there. Stopped (warm, then its process group killed) at the end."""
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the Celery worker needs a PostgreSQL test database (DATABASE_URL)")
    from paas.celery import app

    _clear_queue()
    old_queue, app.conf.task_default_queue = app.conf.task_default_queue, QUEUE
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "paas.settings",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "BERTH_INSTALLATION_ID": settings.BERTH_INSTALLATION_ID,
    }
    log_path = tmp_path / "worker.log"
    celery = Path(sys.executable).parent / "celery"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(celery), "-A", "paas", "worker", "--concurrency", "2", "-P", "prefork",
             "-l", "info", "-n", f"{QUEUE}@%h", "-Q", QUEUE,
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_ready(worker, log_path)
        yield log_path
    finally:
        stop(worker, grace=GRACE + 15)
        app.conf.task_default_queue = old_queue
        _clear_queue()


@pytest.fixture
def two_tenants(make_user, host) -> Iterator[tuple]:
    """(owner, environment) of two unrelated tenants; their engine objects removed after."""
    made, slugs = [], []
    for who in ("slowpoke", "bystander"):
        owner = make_user(f"{who}{uuid.uuid4().hex[:4]}")
        slug = f"fair{uuid.uuid4().hex[:6]}"
        tenant = tenant_services.create_tenant(actor=owner, slug=slug, name=f"Fairness {who}")
        made.append((owner, tenant.environments.order_by("pk").first()))
        slugs.append(slug)
    yield tuple(made)
    for slug in slugs:
        _cleanup(slug)


def running(stack: Stack) -> bool:
    return all(c["State"]["Running"] for c in engine_containers(stack))


def wait_for_state(stack: Stack, state: str, timeout: float) -> float:
    """Seconds until the stack reaches `state` (fails after `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        current = Stack.objects.filter(pk=stack.pk).values_list("state", flat=True).first()
        if current == state:
            return time.monotonic() - start
        time.sleep(0.2)
    row = Stack.objects.filter(pk=stack.pk).values("state", "state_reason").first()
    raise AssertionError(f"{stack.name} did not become {state} in {timeout}s: {row}")


def test_a_tenants_slow_stops_leave_a_worker_for_another_tenants_deploy(
    fairness_worker, two_tenants, image
):
    (slow_owner, slow_env), (other_owner, other_env) = two_tenants
    slow = [make_stack(slow_env, f"slow{i}", SLOW, {"IMAGE": image}) for i in (1, 2)]
    for stack in slow:
        reconciler.reconcile_stack(stack.pk)
        assert running(stack), Stack.objects.get(pk=stack.pk).state_reason

    for stack in slow:  # both queued ahead of the other tenant's deploy
        services.stop(slow_owner, stack)
    time.sleep(1)  # both are in the workers' hands now
    started = time.monotonic()
    quick = services.create_stack(
        other_owner, other_env, "quick", compose=textwrap.dedent(QUICK), answers={"IMAGE": image}
    )
    took = wait_for_state(quick, Stack.State.HEALTHY, timeout=3 * GRACE)
    print(f"\nthe other tenant's deploy took {took:.1f}s beside two {GRACE}s stops")

    # Done while tenant A's processes were still waiting out their grace period: A held
    # one worker, never both.
    assert all(running(stack) for stack in slow), (
        f"the deploy took {took:.1f}s: it waited for tenant A's stops"
    )
    assert time.monotonic() - started < GRACE - 3
    # A's second stop was not lost: queued again until A had a slot, then done.
    for stack in slow:
        wait_for_state(stack, Stack.State.STOPPED, timeout=3 * GRACE + 10)
    assert not any(c["State"]["Running"] for s in slow for c in engine_containers(s))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.zcard(slots_key(slow_env.tenant_id)) == 0  # every slot given back
