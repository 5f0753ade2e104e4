"""The resource pages in a browser: the stack page's port links and Volumes card, the
inspect page, and the volumes page with an orphaned volume; desktop and phone (390 px).

Screenshots go to test-artifacts/browser/ (resources_pages-*, resources_pages-phone-*).
"""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from apps.deployments import containers as naming
from apps.deployments import reconciler
from apps.deployments.models import Container, Stack
from apps.tenants import services as tenant_services
from tests.fixtures.engine import _cleanup, make_stack

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

WEB = """
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo resources-page > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    ports: ["127.0.0.1::80"]
    environment:
      API_TOKEN: ${API_TOKEN}
      GREETING: hello
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 1s
    volumes: ["data:/data"]
volumes:
  data: {}
"""
TOKEN = "tok-" + uuid.uuid4().hex[:10]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.fixture
def tenant_with_stacks(verified_user, host, image):
    user = verified_user(f"res{uuid.uuid4().hex[:6]}")
    slug = f"res{uuid.uuid4().hex[:6]}"
    tenant = tenant_services.create_tenant(actor=user, slug=slug, name="Resources Test")
    environment = tenant.environments.order_by("pk").first()
    stacks = []
    for name in ("shop", "old"):
        stack = make_stack(environment, name, WEB, {"IMAGE": image, "API_TOKEN": TOKEN})
        Stack.objects.filter(pk=stack.pk).update(answers={"API_TOKEN": TOKEN})
        reconciler.reconcile_stack(stack.pk)
        stacks.append(Stack.objects.get(pk=stack.pk))
    old = stacks[1]
    orphan = naming.volume_name(old, "data")
    Stack.objects.filter(pk=old.pk).update(desired_state="removed", remove_volumes=False)
    reconciler.reconcile_stack(old.pk)
    yield user, stacks[0], orphan
    _cleanup(slug)


def no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"{page.url} scrolls sideways: {scroll}px wide"


def test_resources_pages(visitor_factory, tenant_with_stacks, verified_user, image):
    user, stack, orphan = tenant_with_stacks
    container = Container.objects.get(stack=stack)
    for name, options in (("", {}), ("phone", PHONE)):
        visitor = visitor_factory(name, **options)
        visitor.log_in(user.username)
        page = visitor.visit(f"/stacks/{stack.pk}/")
        link = page.locator("#stack-status a[data-port-link]").first
        expect(link).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+$"))
        if not name:
            served = requests.get(link.get_attribute("href"), timeout=10)
            assert "resources-page" in served.text
        card = page.locator("#volumes")
        expect(
            card.locator(f'tr[data-volume="{naming.volume_name(stack, "data")}"]')
        ).to_be_visible()
        expect(card).to_contain_text("data")
        card.scroll_into_view_if_needed()
        visitor.snap("volumes-card")
        if name:
            no_sideways_scroll(page, 390)

        page.locator("#stack-status").get_by_role("link", name=container.name).click()
        page.wait_for_url(re.compile(rf"/stacks/containers/{container.pk}/inspect/$"))
        visitor.snap()
        env = page.locator("table[data-env]")
        expect(env.locator('tr[data-env-name="API_TOKEN"]')).to_contain_text("••••••")
        expect(env.locator('tr[data-env-name="GREETING"]')).to_contain_text("hello")
        assert TOKEN not in page.content()
        expect(page.locator("[data-command]")).to_contain_text("httpd -f -p 80")
        expect(page.locator("[data-ports] a[data-port-link]")).to_have_count(1)
        expect(page.locator("table[data-health-log] tbody tr").first).not_to_contain_text(
            "no health check"
        )
        if name:
            no_sideways_scroll(page, 390)

        page = visitor.visit("/resources/volumes/")
        row = page.locator(f'tr[data-volume="{orphan}"]')
        expect(row).to_contain_text("orphaned")
        expect(row.get_by_role("link", name="Remove…")).to_be_visible()
        expect(
            page.locator(f'tr[data-volume="{naming.volume_name(stack, "data")}"]')
        ).to_contain_text("shop")
        if name:
            no_sideways_scroll(page, 390)
        visitor.visit("/resources/networks/")
        visitor.visit("/resources/images/")
        visitor.assert_assets_loaded()

    # The operator: every image of the host, with the stacks using it, on the host page.
    operator = verified_user(f"op{uuid.uuid4().hex[:6]}")
    type(operator).objects.filter(pk=operator.pk).update(is_superuser=True, is_staff=True)
    visitor = visitor_factory("operator")
    visitor.log_in(operator.username)
    page = visitor.visit(f"/hosts/{container.host_id}/")
    row = page.locator("#images tr", has_text=image)
    expect(row).to_contain_text(f"{stack.tenant.slug}/{stack.name}")
    row.scroll_into_view_if_needed()
    visitor.snap("host-images")
