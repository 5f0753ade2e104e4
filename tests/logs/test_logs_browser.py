"""The Logs page in a browser: search, follow new lines live, download.

Lines are written as the collector writes them (no engine needed). Screenshots go to
test-artifacts/browser/ (logs_page-*).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.tenants import services as tenant_services
from tests.logs.test_search import add_lines

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_logs_page_searches_follows_and_downloads(visitor, verified_user):
    user = verified_user(f"logs{uuid.uuid4().hex[:6]}")
    tenant = tenant_services.create_tenant(actor=user, slug=f"lg{uuid.uuid4().hex[:6]}", name="L")
    environment = tenant.environments.order_by("pk").first()
    add_lines(environment, ["payment accepted order=1", "cache warmed", "payment FAILED order=2"])

    visitor.log_in(user.username)
    page = visitor.visit("/logs/")
    visitor.assert_assets_loaded()
    rows = page.locator("#log-rows .log-line")
    expect(rows).to_have_count(3)

    page.locator("input[name=q]").fill("payment")
    page.locator("input[name=follow]").check()
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"q=payment"))
    visitor.snap("searched")

    # Following: a matching line stored now appears without a reload; others do not.
    add_lines(
        environment,
        ["cache cold", "payment retried order=2"],
        service="api",
        start=timezone.now() - timedelta(seconds=5),
    )
    expect(page.locator("#log-rows")).to_contain_text("payment retried order=2", timeout=15_000)
    expect(rows).to_have_count(3)
    visitor.snap("followed")

    with page.expect_download() as download_info:
        page.locator("[data-download=text]").click()
    text = Path(download_info.value.path()).read_text()
    assert [line.split(" ", 3)[3] for line in text.splitlines()] == [
        "payment accepted order=1",
        "payment FAILED order=2",
        "payment retried order=2",
    ]


def test_owner_sets_retention_in_place_and_sees_a_refusal_on_the_field(visitor, verified_user):
    user = verified_user(f"ret{uuid.uuid4().hex[:6]}")
    tenant = tenant_services.create_tenant(actor=user, slug=f"rt{uuid.uuid4().hex[:6]}", name="R")
    prod = tenant.environments.get(slug="prod")

    visitor.log_in(user.username)
    page = visitor.visit("/logs/")
    page.locator("[data-retention-link]").click()
    expect(page).to_have_url(re.compile(r"/logs/retention/$"))
    row = page.locator(f"#retention-{prod.pk}")
    expect(row.locator("[data-default]")).to_be_visible()

    row.locator("input[name=days]").fill("30")
    row.get_by_role("button", name="Save").click()
    expect(row.locator("[data-days-kept]")).to_have_text("30 days")
    expect(row.get_by_role("status")).to_have_text("saved")
    expect(page).to_have_url(re.compile(r"/logs/retention/$"))  # swapped in place

    row.locator("input[name=days]").fill("1000")
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".field-error")).to_contain_text("1 to 90")
    visitor.snap("retention")
