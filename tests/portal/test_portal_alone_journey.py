"""Issue 12's "done when": from the portal alone, a user deploys the guestbook, changes
an answer (Edit, Preview, Apply), watches the rolling redeploy on the stack page, inspects
a container, reads a volume's size, rolls back and removes the stack. Nothing is done
behind the browser's back except reading what the user would see in another tab (the
guestbook itself, on the port the stack page links to). Screenshots, desktop and phone
(390 px), go to test-artifacts/browser/portal_alone-*.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.portal.test_journeys import containers_table, docker_ids, wait_healthy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def frontend_url(page) -> str:
    """The frontend's published port, as the stack page links it."""
    row = containers_table(page).locator("tbody tr", has_text=re.compile(r"frontend #"))
    link = row.locator("a[data-port-link]").first
    expect(link).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+$"))
    return link.get_attribute("href")


def title_of(url: str) -> str:
    return requests.get(url + "/", timeout=10).text


@pytest.mark.engine
def test_deploy_edit_inspect_volume_rollback_remove(visitor_factory, engine_tenant):
    from apps.deployments.models import Stack

    owner = engine_tenant.memberships.get().user
    visitor = visitor_factory()
    visitor.log_in(owner.username)
    page = visitor.page

    # Deploy from the catalog.
    page.locator("#sidebar").get_by_role("link", name="Catalog").click()
    page.get_by_label("Search templates").type("guestbook", delay=20)
    page.locator("#catalog-results .template-card").get_by_role("link", name="Guestbook").click()
    form = page.locator("#deploy-form")
    form.get_by_label("Stack name").fill("guestbook")
    form.get_by_label("Title").fill("First title")
    form.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    wait_healthy(page, containers=3, revision="r1")
    visitor.snap("deployed")
    site = frontend_url(page)
    assert "First title" in title_of(site)
    for n in range(5):  # entries land in the api's volume: it has a size to show
        posted = requests.post(
            site + "/cgi-bin/post",
            data={"name": f"visitor {n}", "message": "x" * 250},
            timeout=10,
            allow_redirects=False,
        )
        assert posted.status_code == 303, posted.text

    # Change an answer: Edit, Preview (nothing written), Apply.
    page.locator("#configuration").get_by_role("button", name="Edit answers").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/edit/$"))
    page.get_by_label("Title").fill("Second title")
    page.get_by_role("button", name="Preview changes").click()
    preview = page.locator("#change-preview")
    expect(preview).to_contain_text("variable TITLE changed (First title → Second title)")
    visitor.snap("preview")
    stack = Stack.objects.get(tenant=engine_tenant, name="guestbook")
    assert stack.current_revision.number == 1
    preview.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/$"))
    page.evaluate("window.__sameDocument = true")

    # Watch the rolling redeploy: the page follows it without a reload, the header and
    # the cards agree on the revision, and the banner goes once it is done.
    banner = page.get_by_text(re.compile(r"Redeploying guestbook as r2"))
    expect(banner).to_be_visible()
    visitor.snap("rolling")
    wait_healthy(page, containers=3, revision="r2")
    expect(page.locator(".page-header")).to_contain_text("r2")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded itself"
    expect(banner).to_have_count(0, timeout=30_000)
    expect(page.locator("#configuration")).to_contain_text("Second title")
    visitor.snap("redeployed")
    site = frontend_url(page)
    assert "Second title" in title_of(site)

    # Inspect a container: the api's environment, its mount, its health log.
    api_row = containers_table(page).locator("tbody tr", has_text=re.compile(r"api #"))
    api_row.locator("a", has_text=re.compile(r"api")).first.click()
    page.wait_for_url(re.compile(r"/stacks/containers/\d+/inspect/$"))
    expect(
        page.locator("table[data-env]").locator('tr[data-env-name="MAX_MESSAGE"]')
    ).to_contain_text("280")
    expect(page.get_by_text("/data").first).to_be_visible()
    expect(page.locator("table[data-health-log] tbody tr").first).to_be_visible()
    visitor.snap("inspect")
    page.go_back()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/$"))

    # The stack's volume and its size: the card says when it was measured, and
    # "Measure now" asks the engine again (sizes are cached for a few seconds).
    volume = page.locator("#volumes tr", has_text="entries")
    expect(page.locator("[data-volumes-measured]")).to_contain_text("Sizes measured")
    deadline = time.monotonic() + 30
    while re.search(r"\b0\s?bytes", volume.inner_text()) and time.monotonic() < deadline:
        time.sleep(2)
        page.locator("#volumes").get_by_role("button", name="Measure now").click()
        page.wait_for_timeout(500)
    expect(volume).to_contain_text(re.compile(r"\d(\.\d)?\s?(bytes|KB)"))
    expect(volume).not_to_contain_text(re.compile(r"\b0\s?bytes"))
    volume.scroll_into_view_if_needed()
    visitor.snap("volume-size")

    # The same page on a phone: the actions are reachable.
    phone = visitor_factory("phone", **PHONE)
    phone.log_in(owner.username)
    phone.visit(f"/stacks/{stack.pk}/")
    for name in ("Revisions", "Remove"):
        button = phone.page.locator(".page-header").get_by_role("button", name=name)
        button.scroll_into_view_if_needed()
        expect(button).to_be_visible()
    scroll = phone.page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= 390, f"the stack page scrolls sideways on a phone: {scroll}px"
    phone.snap("stack-phone")

    # Roll back to r1: the first title is served again.
    page.locator(".page-header").get_by_role("button", name="Revisions").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has=page.get_by_text("r1", exact=True)).get_by_role(
        "button", name="Roll back"
    ).click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/$"))
    wait_healthy(page, containers=3, revision="r3")
    expect(page.locator("#configuration")).to_contain_text("First title")
    assert "First title" in title_of(frontend_url(page))
    visitor.snap("rolled-back")

    # Remove, with the volumes.
    page.locator(".page-header").get_by_role("button", name="Remove").click()
    page.get_by_label(re.compile("Also delete the stack's volumes")).check()
    page.get_by_role("button", name="Remove stack").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text("Removing guestbook.")).to_be_visible()
    deadline = time.monotonic() + 60
    while docker_ids(stack) and time.monotonic() < deadline:
        time.sleep(1)
    assert not docker_ids(stack), "the stack's containers are still there"
    visitor.snap("removed")
    # The phone still shows the stack's page: it says the stack is gone, once.
    expect(phone.page.locator("[data-stack-gone]")).to_be_visible(timeout=40_000)
    expect(phone.page.locator(".toast-area .flash-error")).to_have_count(0)
    phone.snap("stack-gone")
