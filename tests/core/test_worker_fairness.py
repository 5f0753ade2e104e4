"""One tenant's slow engine calls never hold every worker: real Celery workers (a
`celery worker` subprocess with two processes, on the test database and its own queue),
the real engine.

Tenant A stops two stacks whose process ignores SIGTERM, so each stop waits out its whole
grace period; right after, tenant B deploys. Without the per-tenant bound both workers
sit in A's stops and B's deploy waits for them; with it, B's deploy is done while A's
containers are still waiting to be killed, and A's second stop still happens (its task is
parked until A has a slot).

Tenant A deploys several stacks while its only slot is taken: each task is parked once
(not re-sent every few seconds), tenant B's deploy goes ahead, and A's stacks then deploy
one after another in the order they were asked for, each with exactly one container.
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

from apps.core.queue import slots_key, tenant_slot, waiting_key
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
    # A's second stop was not lost: parked until A had a slot, then done.
    for stack in slow:
        wait_for_state(stack, Stack.State.STOPPED, timeout=3 * GRACE + 10)
    assert not any(c["State"]["Running"] for s in slow for c in engine_containers(s))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.zcard(slots_key(slow_env.tenant_id)) == 0  # every slot given back


def parked_args(tenant_id: int) -> list[list]:
    import json

    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(raw)["args"] for raw in client.lrange(waiting_key(tenant_id), 0, -1)]


def test_a_tenants_deploys_wait_parked_in_order_while_another_tenant_deploys(
    fairness_worker, two_tenants, image
):
    (busy_owner, busy_env), (other_owner, other_env) = two_tenants
    compose, answers = textwrap.dedent(QUICK), {"IMAGE": image}
    # This test holds tenant A's only worker slot (BERTH_TENANT_WORKER_SLOTS is 1 with the
    # default two worker processes), as a long task of A's would.
    with tenant_slot(busy_env.tenant_id, ttl=300) as held:
        assert held
        busy = []
        for i in range(4):
            # One after the other, each parked before the next is asked: two deploys asked
            # in the same instant reach the two worker processes in either order.
            busy.append(
                services.create_stack(
                    busy_owner, busy_env, f"many{i}", compose=compose, answers=answers
                )
            )
            deadline = time.monotonic() + 60
            while len(parked_args(busy_env.tenant_id)) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert parked_args(busy_env.tenant_id) == [[s.pk] for s in busy]  # in order asked
        other = services.create_stack(
            other_owner, other_env, "other", compose=compose, answers=answers
        )
        wait_for_state(other, Stack.State.HEALTHY, timeout=120)
        assert len(engine_containers(other)) == 1
        assert not any(engine_containers(s) for s in busy)  # still parked, not run
        assert parked_args(busy_env.tenant_id) == [[s.pk] for s in busy]
    # The slot given back wakes A's first parked deploy; each one's end wakes the next.
    for stack in busy:
        wait_for_state(stack, Stack.State.HEALTHY, timeout=180)
    containers = [engine_containers(s) for s in busy]
    assert [len(c) for c in containers] == [1] * len(busy)  # none lost, none duplicated
    created = [c[0]["Created"] for c in containers]
    assert created == sorted(created)  # in the order they were asked for
    assert parked_args(busy_env.tenant_id) == []
    # Parked once and sent once more each: no task re-sent while it waited.
    received = [
        line
        for line in fairness_worker.read_text().splitlines()
        if "deployments.reconcile_stack[" in line and line.endswith("received")
    ]
    assert len(busy) + 1 <= len(received) <= 2 * len(busy) + 1, received
