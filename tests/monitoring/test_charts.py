"""The Monitoring charts' data and pages (apps/monitoring/charts.py, views.py): an
object's figures summed over its containers, against their limits, with restarts
marked; the tier chosen by the range; a constant number of queries whatever the range
and the containers; another tenant's objects and hosts unreachable; bad ranges refused.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.deployments import services
from apps.deployments.models import Container, Service
from apps.hosts.models import Host
from apps.monitoring.models import ContainerSample, HostSample, Series
from tests.conftest import login

pytestmark = pytest.mark.django_db

COMPOSE = """
services:
  web:
    image: berth-demo/web:1.0
    deploy:
      replicas: 2
      resources: {limits: {cpus: "0.5", memory: 64M}}
"""


@pytest.fixture
def host(db) -> Host:
    return Host.objects.create(name="local", endpoint="unix:///nowhere.sock", state="active")


@pytest.fixture
def stack(member, tenant_a, host):
    env = tenant_a.environments.get(slug="dev")
    stack = services.create_stack(member, env, "shop", compose=COMPOSE)
    web = Service.objects.get(stack=stack, name="web")
    for replica in (1, 2):
        Container.objects.create(
            stack=stack, service=web, host=host, engine_id=f"engine-{replica}",
            name=f"shop-web-{replica}", replica=replica, state="running",
        )  # fmt: skip
    return stack


def seed(stack, host, *, hours: float, step: int, tier: int, restarts_at=()) -> None:
    """`hours` of samples every `step` s in `tier` for each container of `stack`: CPU 10 %
    and 20 MiB each, the network counter growing 1,000 bytes/s, restarts where asked."""
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(hours=hours)
    rows = []
    for container in Container.objects.filter(stack=stack):
        series = Series.objects.create(
            kind=Series.Kind.CONTAINER, key=f"c{host.pk}:{container.engine_id}",
            tenant=stack.tenant, tenant_slug=stack.tenant.slug,
            environment_pk=stack.environment_id, environment_slug=stack.environment.slug,
            stack_pk=stack.pk, stack_name=stack.name, service_name=container.service.name,
            container_pk=container.pk, name=container.name, host_pk=host.pk,
            host_name=host.name, first_seen_at=start, last_seen_at=now,
        )  # fmt: skip
        at, n = start, 0
        while at <= now:
            rows.append(
                ContainerSample(
                    series=series,
                    tier=tier,
                    at=at,
                    cpu_percent=10.0,
                    cpu_percent_max=12.0,
                    memory_bytes=20 * 2**20,
                    memory_limit_bytes=64 * 2**20,
                    net_rx_bytes=1000 * step * n,
                    net_tx_bytes=0,
                    restarts=1
                    if any(abs((at - r).total_seconds()) < step / 2 for r in restarts_at)
                    else 0,
                )  # fmt: skip
            )
            at += timedelta(seconds=step)
            n += 1
    ContainerSample.objects.bulk_create(rows)


def chart(payload: dict, key: str) -> dict:
    return next(c for c in payload["charts"] if c["key"] == key)


def line(found: dict, label: str) -> list:
    return next(s["values"] for s in found["series"] if s["label"] == label)


def test_a_stack_s_charts_sum_its_containers_against_their_limits(client, member, stack, host):
    restart = timezone.now() - timedelta(minutes=30)
    seed(stack, host, hours=1, step=10, tier=0, restarts_at=[restart])
    login(client, member)
    response = client.get(f"/monitoring/charts/stack/{stack.pk}/?range=1h")
    assert response.status_code == 200
    payload = response.json()
    assert payload["step"] == 10 and payload["range"] == "1h"
    cpu = chart(payload, "cpu")
    assert set(line(cpu, "CPU")) == {20.0}  # two containers at 10 %
    assert set(line(cpu, "limit (now)")) == {100.0}  # 0.5 CPU x 2 replicas
    memory = chart(payload, "memory")
    assert set(line(memory, "in use")) == {40 * 2**20}
    assert set(line(memory, "limit")) == {128 * 2**20}
    network = chart(payload, "network")
    assert {v for v in line(network, "received") if v is not None} == {2000.0}
    assert len(payload["restarts"]) == 1 and abs(payload["restarts"][0] - restart.timestamp()) < 10
    assert len(cpu["times"]) == len(line(cpu, "CPU")) > 300

    # One container: its own figures, its service's limit for one replica.
    container = Container.objects.filter(stack=stack).first()
    one = client.get(f"/monitoring/charts/container/{container.pk}/?range=1h").json()
    assert set(line(chart(one, "cpu"), "CPU")) == {10.0}
    assert set(line(chart(one, "cpu"), "limit (now)")) == {50.0}


def test_the_range_chooses_the_tier_and_the_queries_do_not_grow(client, member, stack, host):
    seed(stack, host, hours=24 * 7, step=600, tier=2)
    login(client, member)
    with CaptureQueriesContext(connection) as week:
        payload = client.get(f"/monitoring/charts/stack/{stack.pk}/?range=7d").json()
    assert payload["step"] == 600
    assert 1000 <= len(chart(payload, "cpu")["times"]) <= 1010
    with CaptureQueriesContext(connection) as quarter:
        payload = client.get(f"/monitoring/charts/stack/{stack.pk}/?range=90d").json()
    assert payload["step"] == 600 and len(chart(payload, "cpu")["times"]) >= 1000
    assert len(week.captured_queries) == len(quarter.captured_queries) <= 20


@pytest.mark.parametrize("bad", ["2w", "", "1h;drop", "7D"])
def test_a_bad_range_is_refused_naming_the_field(client, member, stack, bad):
    login(client, member)
    response = client.get(f"/monitoring/charts/stack/{stack.pk}/", {"range": bad or " "})
    assert response.status_code == 400
    assert "range" in response.json()


def test_another_tenant_s_objects_and_the_hosts_are_not_found(
    client, outsider, member, superuser, stack, host, tenant_a
):
    seed(stack, host, hours=1, step=10, tier=0)
    HostSample.objects.create(
        series=Series.objects.create(
            kind=Series.Kind.HOST, key=f"h{host.pk}", host_pk=host.pk, host_name=host.name,
            first_seen_at=timezone.now(), last_seen_at=timezone.now(),
        ),
        tier=0, at=timezone.now(), cpu_percent=5.0,
    )  # fmt: skip
    container = Container.objects.filter(stack=stack).first()
    login(client, outsider)
    for kind, pk in (("stack", stack.pk), ("container", container.pk), ("tenant", tenant_a.pk),
                     ("environment", stack.environment_id), ("host", host.pk),
                     ("service", container.service_id)):  # fmt: skip
        assert client.get(f"/monitoring/charts/{kind}/{pk}/").status_code == 404, kind
        assert client.get("/monitoring/", {"of": f"{kind}:{pk}"}).status_code == 404, kind
    # The outsider's own tenant page shows nothing of tenant A.
    page = client.get("/monitoring/").content.decode()
    assert "shop" not in page
    login(client, member)
    assert client.get(f"/monitoring/charts/host/{host.pk}/").status_code == 404
    login(client, superuser)
    payload = client.get(f"/monitoring/charts/host/{host.pk}/?range=1h").json()
    assert line(chart(payload, "cpu"), "CPU") == [5.0]


def test_the_monitoring_page_shows_the_tenant_and_what_is_inside(client, member, stack, host):
    login(client, member)
    page = client.get("/monitoring/").content.decode()
    assert "is on its way" not in page
    assert "data-charts" in page and f"?of=stack:{stack.pk}" in page
    page = client.get("/monitoring/", {"of": f"stack:{stack.pk}", "range": "7d"}).content.decode()
    web = Service.objects.get(stack=stack)
    assert f'data-src="/monitoring/charts/stack/{stack.pk}/"' in page
    assert 'data-range="7d"' in page and f"?of=service:{web.pk}" in page
    for bad in ("stack:x", "nothing:1", "stack"):
        assert client.get("/monitoring/", {"of": bad}).status_code == 404
    stack_page = client.get(f"/stacks/{stack.pk}/").content.decode()
    assert f'data-src="/monitoring/charts/stack/{stack.pk}/"' in stack_page
    assert f"?of=service:{web.pk}" in stack_page
