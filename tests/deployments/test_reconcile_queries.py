"""The database work of the periodic host pass: a fixed number of queries, whatever the
number of stacks and containers.

Engine-free: the pass after its one list call (`reconciler.reconcile_listed`) is fed the
containers as the engine would list them, labelled exactly as the reconciler labels what
it creates, so there is nothing to do and the engine is never called (it is None here).
"""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.deployments import containers as naming
from apps.deployments import reconciler, services
from apps.deployments.mirror import mirror
from apps.deployments.models import Container, Service, Stack
from apps.deployments.spec import project_from_spec
from apps.hosts.engine import ManagedContainer
from apps.hosts.models import Host

pytestmark = pytest.mark.django_db

# Placement (stacks, usable hosts, routes, rollouts, the fallback host), user-stopped rows,
# the bulk claim and its read, services, container rows, the release: eleven; one spare.
QUIET_PASS = 12


def compose(replicas: int) -> str:
    return f"""
services:
  api:
    image: berth-demo/worker:1.0
    deploy: {{replicas: {replicas}}}
  web:
    image: berth-demo/worker:1.0
    depends_on: [api]
    deploy: {{replicas: {replicas}}}
"""


@pytest.fixture
def db_host(db):
    return Host.objects.create(name="local", endpoint="unix:///var/run/docker.sock")


@pytest.fixture
def deploy(owner, env_a, django_capture_on_commit_callbacks):
    """Stacks as the service layer makes them, their deploy operation already settled."""

    def make(count: int, replicas: int, prefix: str = "s") -> list[Stack]:
        with django_capture_on_commit_callbacks():  # no reconcile task queued
            made = [
                services.create_stack(owner, env_a, f"{prefix}{i}", compose=compose(replicas))
                for i in range(count)
            ]
        Stack.objects.filter(pk__in=[s.pk for s in made]).update(
            operation="", operation_deadline=None
        )
        related = Stack.objects.select_related("tenant", "environment", "current_revision")
        return list(related.filter(pk__in=[s.pk for s in made]).order_by("pk"))

    return make


def engine_view(stack: Stack, status: str = "Up 3 minutes") -> list[ManagedContainer]:
    """Every replica of the stack, running its current revision."""
    spec = stack.current_revision.spec
    project = project_from_spec(spec)
    listed = []
    for name, service in project.services.items():
        for replica in range(1, service.replicas + 1):
            labels = {
                **naming.stack_labels(stack),
                naming.SERVICE: name,
                naming.REPLICA: str(replica),
                naming.REVISION: str(stack.current_revision.number),
                naming.SPEC_HASH: naming.service_hash(spec, name),
            }
            listed.append(
                ManagedContainer(
                    id=f"{stack.pk:08d}{name}{replica:04d}".ljust(64, "0"),
                    name=naming.container_name(stack, name, replica),
                    image=service.image,
                    state="running",
                    status=status,
                    labels=labels,
                    created=time.time() - 60,
                )
            )
    return listed


def host_pass(db_host: Host, listed: list[ManagedContainer]) -> tuple[int, dict]:
    """One host pass (placement included) after the list call: queries and counters."""
    with CaptureQueriesContext(connection) as captured:
        counters = reconciler.reconcile_listed(
            db_host, None, reconciler._stacks_on(db_host), listed
        )
    return len(captured.captured_queries), counters


def everything(stacks: list[Stack], status: str = "Up 3 minutes") -> list[ManagedContainer]:
    return [c for stack in stacks for c in engine_view(stack, status)]


def test_a_quiet_host_pass_costs_the_same_queries_for_2_or_4_stacks(deploy, db_host):
    small = deploy(2, replicas=2)
    host_pass(db_host, everything(small))  # first sight: the rows are created
    assert Container.objects.count() == 2 * 2 * 2
    assert set(Stack.objects.values_list("state", flat=True)) == {Stack.State.HEALTHY}
    n_stacks, counters = host_pass(db_host, everything(small))
    assert counters == {"stacks": 2, "orphans": 0}

    stacks = small + deploy(2, replicas=8, prefix="big")  # 2N stacks, 4x the replicas
    host_pass(db_host, everything(stacks))
    assert Container.objects.count() == 2 * 2 * 2 + 2 * 2 * 8
    two_n_stacks, counters = host_pass(db_host, everything(stacks))
    assert counters == {"stacks": 4, "orphans": 0}

    assert two_n_stacks == n_stacks, (n_stacks, two_n_stacks)
    assert n_stacks <= QUIET_PASS, n_stacks


def test_the_mirror_writes_in_bulk(deploy, db_host):
    """Rows created, changed and removed: 10 replicas cost the queries 1 replica does,
    and a pass with no change writes no container row."""
    costs = {}
    for replicas in (1, 10):
        (stack,) = deploy(1, replicas, prefix=f"m{replicas}-")
        spec = stack.current_revision.spec
        project = project_from_spec(spec)
        running = engine_view(stack)
        starting = engine_view(stack, "Up 4 minutes (health: starting)")
        api_only = [c for c in running if c.labels[naming.SERVICE] == "api"]
        counts = []
        for listed in (running, running, starting, api_only):
            with CaptureQueriesContext(connection) as captured:
                health = mirror(stack, db_host, listed, spec, project, None)
            counts.append(len(captured.captured_queries))
            rows = Container.objects.filter(stack=stack)
            assert sorted(rows.values_list("engine_id", flat=True)) == sorted(c.id for c in listed)
            assert {r.health for r in rows} == {listed[0].health}
        assert health["web"] == (Service.Health.FAILED, "no container")
        assert Service.objects.get(stack=stack, name="api").health == Service.Health.HEALTHY
        costs[replicas] = counts
    assert costs[1] == costs[10], costs
    # services + rows read; then one insert / nothing / one update / one delete (plus the
    # services whose health changed).
    assert costs[10][1] == 2, costs
