"""Never surprised, in a real browser: a refused form lists every problem and puts the
cursor on the first; a new tenant is the current one; the switcher finds one tenant
among many. Screenshots (desktop and a 390 px phone) go to test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import RUN_ID
from tests.fixtures.catalog import public_template

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
BAD_COMPOSE = "services:\n  web:\n    image: x\n    privileged: true\n"
COMPOSE = """services:
  web:
    image: berth-demo/web:1.0
    environment:
      INTRO: ${INTRO}
      SITE: ${SITE}
"""
BERTH = """questions:
  - {variable: INTRO, label: Introduction, type: multiline, default: "Hello"}
  - {variable: SITE, label: Site title, type: string, required: true, group: Site}
"""


def site_template():
    return public_template(
        f"site{RUN_ID}", "Site", "A site with one required answer.", COMPOSE, BERTH
    )


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_compose_deploy_lists_every_problem_and_focuses_the_first(
    visitor_factory, verified_user, device
):
    from apps.tenants import services as tenant_services

    user = verified_user(f"fay{device[0]}{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"forms{device[0]}{RUN_ID}", name="Forms")
    fay = visitor_factory(device, **(PHONE if device == "phone" else DESKTOP))
    fay.log_in(user.username)
    page = fay.visit("/stacks/new/")
    page.get_by_label("Name").fill("Bad Name")
    page.get_by_label("Compose file").fill(BAD_COMPOSE)
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_load_state("load")

    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("2 problems to fix")
    expect(summary.get_by_role("link", name="Name")).to_be_visible()
    expect(summary.get_by_role("link", name="Compose file")).to_be_visible()
    expect(summary).to_contain_text("privileged")
    name = page.get_by_label("Name")
    expect(name).to_be_focused()
    expect(name).to_have_attribute("aria-invalid", "true")
    fay.page.screenshot(path=str(fay.artifacts / f"{fay.prefix}-focus-{device}.png"))
    fay.snap("errors")

    summary.get_by_role("link", name="Compose file").click()
    expect(page.get_by_label("Compose file")).to_be_focused()
    expect(page.get_by_label("Compose file")).to_be_in_viewport()


def test_catalog_deploy_scrolls_to_the_first_problem(visitor_factory, verified_user):
    from apps.tenants import services as tenant_services

    user = verified_user(f"cleo{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"cat{RUN_ID}", name="Catalog")
    template = site_template()
    cleo = visitor_factory("phone", **PHONE)
    cleo.log_in(user.username)
    page = cleo.visit(f"/catalog/{template.pk}/")
    page.get_by_label("Stack name").fill("blog")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_load_state("load")

    site = page.get_by_label("Site title")
    expect(site).to_be_focused()  # the only problem, far down a phone's page
    expect(site).to_be_in_viewport()
    expect(page.locator("[data-error-summary]")).to_contain_text("This answer is required.")
    cleo.page.screenshot(path=str(cleo.artifacts / f"{cleo.prefix}-first-error-in-view.png"))

    page.get_by_label("Stack name").fill("Bad Name")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_load_state("load")
    summary = page.locator("[data-error-summary]")
    expect(summary).to_contain_text("2 problems to fix")  # both in one submit
    expect(page.get_by_label("Stack name")).to_be_focused()
    cleo.snap("both-errors")


def test_new_tenant_becomes_the_current_one(visitor_factory, verified_user):
    from apps.tenants import services as tenant_services

    user = verified_user(f"nora{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"first{RUN_ID}", name="First Co")
    nora = visitor_factory("desktop", **DESKTOP)
    nora.log_in(user.username)
    page = nora.page
    expect(page.get_by_label("Current tenant")).to_have_value(re.compile(r"\d+"))
    nora.visit("/tenants/new/")
    page.get_by_label("Slug").fill(f"second{RUN_ID}")
    page.get_by_label("Name").fill("Second Co")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_load_state("load")
    nora.snap("created")
    expect(page.get_by_text("you are now working in it, in Dev")).to_be_visible()
    tenant = page.get_by_label("Current tenant")
    expect(tenant.locator("option:checked")).to_have_text("Second Co")
    expect(page.get_by_label("Current environment").locator("option:checked")).to_have_text("Dev")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_switcher_search_among_sixty_tenants(visitor_factory, verified_user, device):
    from apps.tenants.models import Environment, Tenant

    admin = verified_user(f"ada{device[0]}{RUN_ID}")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    suffix = f"{device[0]}{RUN_ID}"
    Tenant.objects.bulk_create(
        Tenant(slug=f"t{i:02d}{suffix}", name=f"Customer {i:02d}") for i in range(60)
    )
    Environment.objects.bulk_create(
        Environment(tenant=t, slug=s, name=s.capitalize())
        for t in Tenant.objects.filter(slug__endswith=suffix)
        for s in ("dev", "prod")
    )
    ada = visitor_factory(device, **(PHONE if device == "phone" else DESKTOP))
    ada.log_in(admin.username)
    page = ada.visit("/")
    search = page.get_by_role("combobox", name=re.compile("Current tenant"))
    expect(search).to_be_visible()
    expect(page.locator("#switcher-tenants option")).to_have_count(60)

    # The keyboard: type part of a name, Enter.
    search.click()
    page.keyboard.type("Customer 42")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ada.snap("switched-by-search")
    expect(page.get_by_role("combobox", name=re.compile("Current tenant"))).to_have_value(
        f"t42{suffix}"
    )

    # A choice from the list (what the datalist does: one replacement of the value).
    with page.expect_navigation():
        page.eval_on_selector(
            "[name=tenant_search]",
            f"el => {{ el.value = 't17{suffix}'; el.dispatchEvent(new Event('input', "
            "{bubbles: true})); }",
        )
    expect(page.get_by_role("combobox", name=re.compile("Current tenant"))).to_have_value(
        f"t17{suffix}"
    )
    with page.expect_navigation():
        page.get_by_label("Current environment").select_option(label="Prod")
    expect(page.get_by_label("Current environment").locator("option:checked")).to_have_text("Prod")

    # Too vague: nothing switches and the page says why.
    search = page.get_by_role("combobox", name=re.compile("Current tenant"))
    search.fill("Customer 1")
    with page.expect_navigation():
        search.press("Enter")
    expect(page.get_by_text("several match it")).to_be_visible()
    ada.snap("ambiguous")
