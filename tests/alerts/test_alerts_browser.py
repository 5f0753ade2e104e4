"""The alerts pages in a real browser: the top bar's badge counts a firing alert, the
Alerts page lists it, Acknowledge takes it off the badge; a rule is created through the
form after a refused submit shows its errors next to the fields."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, AlertRule
from apps.tenants import services as tenant_services
from apps.tenants.models import Environment
from tests.alerts.conftest import container_series, sample

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_badge_alerts_page_acknowledge_and_rule_form(visitor, verified_user):
    cora = verified_user("cora")
    tenant = tenant_services.create_tenant(actor=cora, slug="rockets", name="Rocket Works")
    env = Environment.objects.get(tenant=tenant, slug="dev")
    services.create_rule(
        cora,
        tenant,
        {
            "name": "cpu high",
            "kind": "metric",
            "metric": "cpu_percent",
            "comparison": "gt",
            "threshold": 80,
        },
    )
    now = timezone.now()
    sample(container_series(tenant, env, "shop-web-1", now=now), now, cpu_percent=97)
    evaluate(now, send=False)
    alert = Alert.objects.get()

    visitor.log_in("cora")
    page = visitor.page
    badge = page.locator("#alerts-badge")
    expect(badge.locator("[data-alerts-count]")).to_have_text("1")
    badge.click()
    page.wait_for_load_state("load")
    visitor.snap("alerts-firing")
    visitor.assert_assets_loaded()
    row = page.locator(f'#open-alerts tr[data-alert-id="{alert.pk}"]')
    expect(row).to_contain_text("Firing")
    expect(row).to_contain_text("cpu_percent 97% > 80%")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state("load")
    visitor.snap("acknowledged")
    expect(page.get_by_text("Alert acknowledged.")).to_be_visible()
    expect(page.locator("#alerts-badge [data-alerts-count]")).to_have_count(0)
    expect(page.locator(f'tr[data-alert-id="{alert.pk}"]')).to_contain_text("cora")

    page.locator("nav.tabs").get_by_role("link", name="Rules").click()
    page.wait_for_load_state("load")
    visitor.snap("rules")
    page.get_by_role("button", name="New rule").click()
    page.wait_for_load_state("load")
    form = page.locator("#rule-form")
    form.get_by_label("Name", exact=True).fill("restarts")
    form.get_by_label("Kind").select_option("restarts")
    expect(form.get_by_label("Metric")).to_be_hidden()  # a restarts rule reads no metric
    form.get_by_label("Threshold").fill("3")
    form.get_by_label("Window (seconds)").fill("5")
    form.get_by_role("button", name="Save rule").click()
    page.wait_for_load_state("load")
    visitor.snap("rule-refused")
    window = page.locator(".field", has=page.get_by_label("Window (seconds)"))
    expect(window.locator(".field-error")).to_contain_text("Use a number from 60")
    page.locator("#rule-form").get_by_label("Window (seconds)").fill("600")
    page.locator("#rule-form").get_by_role("button", name="Save rule").click()
    page.wait_for_load_state("load")
    visitor.snap("rule-created")
    expect(page.get_by_text("Rule restarts created.")).to_be_visible()
    assert AlertRule.objects.get(name="restarts").window_seconds == 600
