"""What a new user does with Berth, in a real browser, by clicking and typing.

Each test asserts on what the person sees. Screenshots of every page go to
test-artifacts/browser/ (path printed at the end of the run).
"""

from __future__ import annotations

import re

import pytest
import requests
from django.core import mail
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, RUN_ID

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def verification_link(address: str) -> str:
    """The confirmation link of the last mail sent to `address` (locmem outbox)."""
    sent = [m for m in mail.outbox if address in m.to]
    assert sent, f"no mail to {address}; outbox: {[m.to for m in mail.outbox]}"
    found = re.search(r"https?://\S+/accounts/confirm-email/\S+", sent[-1].body)
    assert found, sent[-1].body
    return found.group(0)


def test_signup_verify_login(visitor):
    page = visitor.visit("/accounts/signup/")
    visitor.assert_assets_loaded()
    username = f"nina{RUN_ID}"
    address = f"{username}@example.test"
    page.get_by_label("Email").fill(address)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label(re.compile(r"Password \(again\)", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("sign up", re.I)).click()
    expect(page.get_by_text(re.compile("verify your e-?mail", re.I)).first).to_be_visible()
    visitor.snap("verification-sent")

    link = verification_link(address)
    page.goto(link)
    visitor.snap("confirm-email")
    expect(page.get_by_text(address).first).to_be_visible()
    page.get_by_role("button", name=re.compile("confirm", re.I)).click()
    page.wait_for_load_state("load")
    visitor.snap("confirmed")

    expect(page.get_by_text(f"You have confirmed {address}.")).to_be_visible()
    visitor.log_in(username)
    expect(page.get_by_role("heading", name="Welcome to Berth")).to_be_visible()
    expect(page.get_by_text(username).first).to_be_visible()
    visitor.assert_assets_loaded()


def test_tenant_and_invitation(visitor_factory, verified_user):
    verified_user(f"tina{RUN_ID}")
    colleague = verified_user(f"carl{RUN_ID}")
    tina = visitor_factory("owner")
    tina.log_in(f"tina{RUN_ID}")
    page = tina.page
    page.get_by_role("link", name="Create a tenant").first.click()
    tina.snap()
    slug = f"rockets{RUN_ID}"
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Name").fill("Rocket Works")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_load_state("load")
    tina.snap()
    expect(page.get_by_role("heading", name=re.compile("Rocket Works"))).to_be_visible()
    environments = page.locator("#environments")
    for name in ("dev", "staging", "prod"):
        expect(environments.get_by_role("cell", name=name, exact=True)).to_be_visible()

    page.get_by_role("button", name="Invite").click()
    tina.snap()
    page.get_by_label("Email").fill(colleague.email)
    page.get_by_label("Role").select_option(label="Admin")
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_load_state("load")
    tina.snap()
    expect(page.get_by_role("heading", name="Invitation created")).to_be_visible()
    link = page.get_by_label("Invitation link").input_value()
    assert "/invitations/" in link, link

    carl = visitor_factory("colleague")
    carl.page.goto(link)  # not signed in yet: the sign-in page, then back to the link
    carl.log_in(colleague.username)
    other = carl.page
    expect(other.get_by_role("heading", name="Join Rocket Works")).to_be_visible()
    expect(other.locator(".invitation-card .badge")).to_have_text("Admin")
    other.get_by_role("button", name="Accept and join").click()
    other.wait_for_load_state("load")
    carl.snap()
    expect(other.get_by_text("Welcome to Rocket Works.")).to_be_visible()
    expect(other.get_by_role("heading", name=re.compile("Rocket Works"))).to_contain_text("Admin")
    row = other.locator("#members tr", has_text=colleague.username)
    expect(row).to_contain_text("Admin")

    page.get_by_role("button", name="Done").click()
    tina.snap("owner-sees-member")
    expect(page.locator("#members tr", has_text=colleague.username)).to_contain_text("Admin")


def test_api_token_shown_once(visitor, verified_user, live_server):
    from apps.tenants import services as tenant_services

    user = verified_user(f"theo{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"tokens{RUN_ID}", name="Token Test")
    visitor.log_in(user.username)
    page = visitor.page
    page.locator("#sidebar").get_by_role("link", name="Settings").click()
    visitor.snap()
    page.get_by_role("link", name="API tokens").first.click()
    visitor.snap()
    page.get_by_label("Name").fill("ci-deploy")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state("load")
    visitor.snap()
    expect(page.get_by_text("this is the only time it is shown")).to_be_visible()
    raw = page.get_by_label("New API token").input_value()
    assert raw.startswith("berth_"), raw

    api = f"{live_server.url}/api/v1/tenants/"
    answer = requests.get(api, headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert f"tokens{RUN_ID}" in answer.text

    # Shown once: back on the page later, only its prefix is there.
    page.locator("#sidebar").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="API tokens").first.click()
    expect(page.get_by_label("New API token")).to_have_count(0)
    assert raw not in page.content()
    row = page.locator("tr", has_text="ci-deploy")
    row.get_by_role("link", name="Revoke").click()
    visitor.snap()
    page.get_by_role("button", name="Revoke token").click()
    page.wait_for_load_state("load")
    visitor.snap()
    expect(page.locator("tr", has_text="ci-deploy")).to_contain_text("revoked")

    answer = requests.get(api, headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert answer.status_code == 401, answer.text


def test_phone_layout(visitor_factory, verified_user):
    from apps.tenants import services as tenant_services

    user = verified_user(f"pia{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"phone{RUN_ID}", name="Phone Test")
    phone = visitor_factory(
        "phone", viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    phone.log_in(user.username)
    page = phone.page
    expect(page.get_by_role("heading", name="Phone Test")).to_be_visible()
    sidebar = page.locator("#sidebar")
    expect(sidebar.get_by_role("link", name="Catalog")).not_to_be_visible()
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 375, f"the dashboard scrolls sideways: {width}px wide"

    page.get_by_role("button", name="Menu").click()
    expect(sidebar.get_by_role("link", name="Catalog")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "true")
    phone.snap("menu-open")
    sidebar.get_by_role("link", name="Tenants").click()
    page.wait_for_load_state("load")
    phone.snap()
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Catalog")).not_to_be_visible()

    wide = {}
    for path in ("/tenants/", "/catalog/", "/stacks/", "/settings/tokens/", "/activity/"):
        phone.visit(path)
        wide[path] = page.evaluate("document.scrollingElement.scrollWidth")
    print(f"\nscrollWidth at 375px: {wide}")
    assert all(w <= 375 for w in wide.values()), wide
