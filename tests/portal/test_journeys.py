"""What a new user does with Berth, in a real browser, by clicking and typing.

Each test asserts on what the person sees. Screenshots of every page go to
test-artifacts/browser/ (path printed at the end of the run).
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from django.core import mail
from playwright.sync_api import expect

from tests.fixtures.browser import PASSWORD, RUN_ID

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
    carl.snap("invitation-sign-in")
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
    # Slid in whole (not clipped at the left edge) once its transition is over.
    page.wait_for_function(
        "document.getElementById('sidebar').getBoundingClientRect().left >= 0", timeout=5000
    )
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


HEALTHY_TIMEOUT = 120_000  # ms


def services_table(page):
    return page.locator("article", has=page.get_by_role("heading", name="Services"))


def containers_table(page):
    return page.locator("article", has=page.get_by_role("heading", name="Containers"))


def wait_healthy(page, containers: int, revision: str) -> None:
    """Wait, without reloading, until the self-refreshing stack page shows the stack and
    every service healthy with `containers` containers at `revision`."""
    state = page.locator(".stat", has_text="State")
    expect(state).to_contain_text("Healthy", timeout=HEALTHY_TIMEOUT)
    expect(page.locator(".stat", has_text="Containers")).to_contain_text(str(containers))
    expect(page.locator(".stat", has_text="Revision")).to_contain_text(revision)
    rows = services_table(page).locator("tbody tr")
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text("Healthy")
    expect(containers_table(page).locator("tbody tr")).to_have_count(containers)


@pytest.mark.engine
def test_deploy_demo_template_until_healthy(visitor, engine_tenant):
    from apps.deployments.models import Stack

    owner = engine_tenant.memberships.get().user
    visitor.log_in(owner.username)
    page = visitor.page
    page.locator("#sidebar").get_by_role("link", name="Catalog").click()
    visitor.snap()
    page.get_by_label("Search templates").type("guestbook", delay=30)
    cards = page.locator("#catalog-results .template-card")
    expect(cards).to_have_count(1)  # htmx filtered the list as I typed
    visitor.snap("catalog-search")
    cards.get_by_role("link", name="Guestbook").click()
    visitor.snap()

    form = page.locator("#deploy-form")
    form.get_by_label("Stack name").fill("guestbook")
    expect(form.get_by_label("Environment")).to_have_value(
        str(engine_tenant.environments.get(slug="dev").pk)
    )
    form.get_by_label("Title").fill("Browser guestbook")
    form.get_by_label("Stats every (seconds)").fill("5")
    visitor.snap("deploy-form-filled")
    form.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    visitor.snap("stack-deploying")
    expect(page.get_by_role("heading", name="guestbook")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    began = time.monotonic()
    wait_healthy(page, containers=3, revision="r1")
    print(f"\nguestbook healthy on the page after {time.monotonic() - began:.1f}s")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded itself"
    visitor.snap("stack-healthy")

    ports = containers_table(page).locator("tr", has_text="frontend").first.inner_text()
    found = re.search(r"127\.0\.0\.1:(\d+)→8080", ports)
    assert found, f"no published port shown: {ports!r}"
    site = requests.get(f"http://127.0.0.1:{found.group(1)}/", timeout=10)
    assert site.status_code == 200
    assert "Browser guestbook" in site.text

    row = services_table(page).locator("tr", has_text="frontend")
    row.get_by_label("Replicas of frontend").fill("2")
    row.get_by_role("button", name="Scale").click()
    visitor.snap("scaling")  # (the form may post through htmx: no flash message then)
    wait_healthy(page, containers=4, revision="r2")
    frontends = containers_table(page).locator("tbody tr", has_text=re.compile(r"frontend #"))
    expect(frontends).to_have_count(2)
    visitor.snap("scaled-to-2")

    page.locator(".page-header").get_by_role("button", name="Revisions").click()
    visitor.snap()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has=page.get_by_text("r1", exact=True)).get_by_role(
        "button", name="Roll back"
    ).click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    expect(page.get_by_text("Rolling back to r1.")).to_be_visible()
    wait_healthy(page, containers=3, revision="r3")
    expect(services_table(page).get_by_label("Replicas of frontend")).to_have_value("1")
    expect(frontends).to_have_count(1)
    visitor.snap("rolled-back")

    stack = Stack.objects.get(tenant=engine_tenant, name="guestbook")
    page.locator(".page-header").get_by_role("button", name="Remove").click()
    visitor.snap()
    page.get_by_label(re.compile("Also delete the stack's volumes")).check()
    page.get_by_role("button", name="Remove stack").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text("Removing guestbook.")).to_be_visible()
    visitor.snap("removing")
    deadline = time.monotonic() + 60
    while docker_ids(stack) and time.monotonic() < deadline:
        time.sleep(1)
    assert not docker_ids(stack), "the stack's containers are still there"
    page.reload()  # a GET (the list does not refresh itself)
    visitor.snap("removed")
    expect(page.get_by_text("No stack here yet")).to_be_visible()


def docker_ids(stack) -> list[str]:
    from django.conf import settings

    from tests.fixtures.browser import docker

    # Another test run on this engine has its own stack with the same primary key.
    return docker(
        "ps",
        "-aq",
        "--filter",
        f"label=io.berth.installation={settings.BERTH_INSTALLATION_ID}",
        "--filter",
        f"label=io.berth.stack={stack.pk}",
    ).split()
