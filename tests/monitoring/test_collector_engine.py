"""The collector against the real engine: a running container sampled twice gets rows
with plausible figures, a restart is counted, a removed container keeps its history
until retention, and the pass asks the engine once per container."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.deployments import reconciler
from apps.deployments.models import Container
from apps.monitoring import collector, queries, rollup, tiers
from apps.monitoring.models import ContainerSample, HostSample, Series
from tests.fixtures.engine import docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

BUSY = """
services:
  web:
    image: ${IMAGE}
    command:
      - sh
      - -c
      - while true; do i=0; while [ $$i -lt 3000 ]; do i=$$((i+1)); done; sleep 0.2; done
    mem_limit: 64m
    stop_grace_period: 1s
"""


def next_second() -> None:
    """Rows are unique per second: the next pass must start in a later one."""
    time.sleep(1.05 - (time.time() % 1))


def test_collector_samples_restarts_and_keeps_history(environment, image):
    stack = make_stack(environment, "metered", BUSY, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    (engine_container,) = engine_containers(stack)
    row = Container.objects.get(stack=stack)

    first = collector.collect()
    time.sleep(tiers.FIRST_START_SLACK)  # the container is older than that at the restart
    next_second()
    second = collector.collect()
    series = Series.objects.get(kind=Series.Kind.CONTAINER, container_pk=row.pk)
    assert (series.tenant_id, series.stack_name, series.service_name) == (
        stack.tenant_id,
        "metered",
        "web",
    )
    rows = list(ContainerSample.objects.filter(series=series, tier=0).order_by("at"))
    assert len(rows) == 2
    latest = rows[-1]
    assert latest.cpu_ns > rows[0].cpu_ns > 0
    assert latest.cpu_percent is not None and 0 < latest.cpu_percent < 250
    assert 0 < latest.memory_bytes < latest.memory_limit_bytes == 64 * 1024 * 1024
    assert latest.health == ContainerSample.Health.NONE
    host_row = HostSample.objects.filter(series__host_pk=row.host_id).latest("at")
    assert host_row.containers >= 1 and host_row.running >= 1
    # One call per running container, plus the version probe, the list and the events.
    assert first.engine_calls == second.engine_calls == 3 + second.sampled
    print(f"engine calls for {second.sampled} containers: {second.engine_calls}")

    # Stopped then started by hand: one start. (`docker restart -t 0` kills the process,
    # and under load the engine's restart policy can start it too: two real starts.)
    docker("stop", "-t", "0", engine_container["Id"])
    docker("start", engine_container["Id"])
    next_second()
    collector.collect()
    series.refresh_from_db()
    assert series.restarts_total == 1
    assert ContainerSample.objects.filter(series=series, restarts=1).count() == 1
    assert (
        sum(v for _, v in queries.series(row, "restarts", timezone.now() - timedelta(minutes=5)))
        == 1
    )

    # Removed: no new rows, the history stays until its retention.
    docker("rm", "-f", engine_container["Id"])
    next_second()
    collector.collect()
    assert ContainerSample.objects.filter(series=series, tier=0).count() == 3
    rollup.run(now=timezone.now() + timedelta(hours=2))
    assert ContainerSample.objects.filter(series=series, tier=1).exists()
    assert ContainerSample.objects.filter(series=series, tier=0).count() == 3
    rollup.run(now=timezone.now() + timedelta(days=1, hours=1))
    assert not ContainerSample.objects.filter(series=series, tier=0).exists()
    assert ContainerSample.objects.filter(series=series, tier=1).exists()
