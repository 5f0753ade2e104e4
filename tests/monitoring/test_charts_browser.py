"""The Monitoring charts in a browser: a stack's charts drawn (CPU against its limit,
memory, network), its container's restart marked, the range buttons redrawing from
another tier and keeping the choice in the URL, the stack page's own charts, and the
phone layout without sideways scrolling.

Screenshots go to test-artifacts/browser/ (charts-*).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.deployments import services
from apps.deployments.models import Container, Service
from apps.hosts.models import Host
from apps.monitoring.models import ContainerSample, Series
from apps.tenants import services as tenant_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  web:
    image: berth-demo/web:1.0
    deploy:
      resources: {limits: {cpus: "0.5", memory: 64M}}
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.fixture
def metered_stack(verified_user):
    user = verified_user(f"charts{uuid.uuid4().hex[:6]}")
    tenant = tenant_services.create_tenant(
        actor=user, slug=f"ch{uuid.uuid4().hex[:6]}", name="Charts"
    )
    env = tenant.environments.order_by("pk").first()
    host = Host.objects.create(name=f"h{uuid.uuid4().hex[:6]}", endpoint="unix:///no.sock")
    stack = services.create_stack(user, env, "shop", compose=COMPOSE)
    web = Service.objects.get(stack=stack)
    container = Container.objects.create(
        stack=stack, service=web, host=host, engine_id="e1", name="shop-web-1", state="running"
    )
    now = timezone.now().replace(microsecond=0)
    series = Series.objects.create(
        kind=Series.Kind.CONTAINER, key=f"c{host.pk}:e1", tenant=tenant, tenant_slug=tenant.slug,
        environment_pk=env.pk, stack_pk=stack.pk, stack_name="shop", service_name="web",
        container_pk=container.pk, name=container.name, host_pk=host.pk,
        first_seen_at=now - timedelta(days=7), last_seen_at=now,
    )  # fmt: skip
    rows = []
    for tier, step, span in ((0, 10, 3600), (1, 60, 86400), (2, 600, 7 * 86400)):
        for i in range(span // step):
            at = now - timedelta(seconds=span - i * step)
            rows.append(
                ContainerSample(
                    series=series,
                    tier=tier,
                    at=at,
                    cpu_percent=20 + (i % 30),
                    memory_bytes=(20 + i % 10) * 2**20,
                    memory_limit_bytes=64 * 2**20,
                    net_rx_bytes=i * 5000,
                    restarts=1 if (tier, i) == (0, 200) else 0,
                )  # fmt: skip
            )
    ContainerSample.objects.bulk_create(rows)
    return user, stack


def test_charts(visitor_factory, metered_stack):
    user, stack = metered_stack
    visitor = visitor_factory()
    visitor.log_in(user.username)
    page = visitor.visit(f"/monitoring/?of=stack:{stack.pk}&range=1h")
    charts = page.locator("[data-charts]")
    expect(charts).to_have_attribute("data-rendered", "4")  # CPU, memory, network, block I/O
    cpu = page.locator("figure[data-chart-key=cpu]")
    expect(cpu.locator("canvas")).to_have_count(1)
    expect(cpu.locator(".u-legend")).to_contain_text("limit (now)")
    expect(cpu).to_have_attribute("data-restarts", "1")
    expect(page.locator("[data-charts-status]")).to_contain_text("1 restart marked")
    expect(page.locator("figure[data-chart-key=memory] .u-legend")).to_contain_text("limit")
    visitor.snap("stack-1h")

    page.get_by_role("button", name="7d").click()
    expect(charts).to_have_attribute("data-range", "7d")
    expect(page.locator("[data-charts-status]")).to_contain_text("every 10 min")
    expect(page.get_by_role("button", name="7d")).to_have_attribute("aria-pressed", "true")
    assert "range=7d" in page.url
    visitor.snap("stack-7d")

    # The breadcrumb and the service below it lead to their own charts.
    page.locator("[data-monitoring-children] a", has_text="web").click()
    expect(page.locator("[data-charts]")).to_have_attribute("data-rendered", "4")
    expect(page.locator("[data-monitoring-trail]")).to_contain_text("stack shop")

    page = visitor.visit(f"/stacks/{stack.pk}/")
    expect(page.locator("[data-charts]")).to_have_attribute("data-rendered", "4")

    phone = visitor_factory("phone", **PHONE)
    phone.log_in(user.username)
    page = phone.visit(f"/monitoring/?of=stack:{stack.pk}")
    expect(page.locator("[data-charts]")).to_have_attribute("data-rendered", "4")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the charts scroll sideways: {width}px"
    phone.snap("phone")
