"""A built-in template's hostname question, end to end in a real browser: the guestbook
deployed with DOMAIN=guestbook.localhost shows its route as a link on the stack page,
the backends' health as HAProxy reports it turns UP, and the link answers through the
run's own frontier (HAProxy, tests/fixtures/frontier.py). Then a route added with the
stack page's form serves too, and its Remove button takes it off the frontier.

Chromium resolves every *.localhost name to the loopback address by itself, so the
browser follows the links as a user would, with no hosts file.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

HEALTHY_TIMEOUT = 120_000  # ms
UP_TIMEOUT = 60_000  # ms: the table refreshes every 5 s, HAProxy checks every few seconds


def route_row(page, url: str):
    """The Routes table's row whose link is `url` (host names may contain each other)."""
    return page.locator("#routes tbody tr", has=page.get_by_role("link", name=url, exact=True))


def open_link(page, url: str) -> str:
    """Follow `url` in a new tab of the same browser: the page's text."""
    tab = page.context.new_page()
    try:
        response = tab.goto(url)
        assert response is not None and response.status == 200, (url, response and response.status)
        return tab.content()
    finally:
        tab.close()


def test_guestbook_hostname_route_in_the_browser(visitor, engine_tenant, frontier):
    owner = engine_tenant.memberships.get().user
    visitor.log_in(owner.username)
    page = visitor.page

    # Deploy the guestbook from the catalog, answering its hostname question.
    visitor.visit("/catalog/")
    page.get_by_label("Search templates").type("guestbook", delay=20)
    page.locator("#catalog-results .template-card").get_by_role("link", name="Guestbook").click()
    page.wait_for_load_state("load")
    form = page.locator("#deploy-form")
    form.get_by_label("Stack name").fill("gb")
    form.get_by_label("Title").fill("Routed guestbook")
    form.get_by_label("Hostname").fill("guestbook.localhost")
    visitor.snap("deploy-form-with-hostname")
    form.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))

    # The route is a link on the frontier's port as soon as the stack exists.
    url = f"http://guestbook.localhost:{frontier.port}/"
    expect(route_row(page, url)).to_be_visible()
    expect(route_row(page, url)).to_contain_text("from the template")
    expect(page.locator(".stat", has_text="State")).to_contain_text(
        "Healthy", timeout=HEALTHY_TIMEOUT
    )
    health = route_row(page, url).locator("[data-route-health]")
    expect(health.locator("[data-backend-status=UP]")).to_have_count(1, timeout=UP_TIMEOUT)
    expect(health).to_contain_text("frontend")  # each backend named by its container
    visitor.snap("route-up")

    assert "Routed guestbook" in open_link(page, url)
    status, body = frontier.get("guestbook.localhost")
    assert status == 200 and "Routed guestbook" in body

    # A route of my own, through the form.
    page.locator("#routes").get_by_text("Add a route").click()
    route_form = page.locator("#route-form")
    route_form.get_by_label("Service").select_option(label="frontend")
    route_form.get_by_label("Host name").fill("book.localhost")
    route_form.get_by_label("Container port").fill("8080")
    visitor.snap("route-form-filled")
    route_form.get_by_role("button", name="Add route").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text("Route book.localhost/ added.")).to_be_visible()
    mine = f"http://book.localhost:{frontier.port}/"
    expect(route_row(page, mine)).to_be_visible()
    expect(route_row(page, mine).locator("[data-backend-status=UP]")).to_have_count(
        1, timeout=UP_TIMEOUT
    )
    visitor.snap("user-route-up")
    assert "Routed guestbook" in open_link(page, mine)

    # Removed: off the page and off the frontier; the template's route stays.
    page.once("dialog", lambda dialog: dialog.accept())
    route_row(page, mine).get_by_role("button", name="Remove").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text("Route book.localhost/ removed.")).to_be_visible()
    expect(route_row(page, mine)).to_have_count(0)
    assert frontier.get("book.localhost")[0] != 200
    assert frontier.get("guestbook.localhost")[0] == 200
    visitor.snap("user-route-removed")
    visitor.assert_assets_loaded()
