"""Never surprised, in a real browser: times read one way (relative, the absolute time in
the chosen zone on hover), the stack page's header always shows the cards' revision, an
operation's message goes once the operation is done, and on a 390px phone every action
of the stack page is in reach with nothing wider than the screen but scroll containers.

The first tests need no engine: the stack's operation never ends by itself (no worker),
so the test ends it in the database, as the worker would. The last one runs the real
worker, daphne and Docker engine. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from apps.core.templatetags.berth_time import absolute_text
from tests.fixtures.browser import RUN_ID
from tests.portal.test_live_pages import daphne, daphne_password, live_visitor  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1400, "height": 1000}}
RELATIVE = re.compile(r"^(just now|in a few seconds|(in )?\d+ \w+?s?( ago)?)$")

COMPOSE = """
services:
  web:
    image: berth-demo/web:1.0
    ports: ["8080:80"]
  worker:
    image: berth-demo/worker:1.0
"""


def make_stack(user, name: str = "shop"):
    """A tenant of the user's and a compose stack in it; the deploy stays queued."""
    from apps.deployments import services
    from apps.tenants import services as tenant_services

    tenant = tenant_services.create_tenant(actor=user, slug=f"ns{RUN_ID}{name}", name="Never")
    environment = tenant.environments.get(slug="dev")
    return services.create_stack(user, environment, name, compose=COMPOSE)


def finish_operation(stack, state: str = "running") -> None:
    """What the worker writes when an operation is over."""
    from apps.deployments.models import Stack

    Stack.objects.filter(pk=stack.pk).update(state=state, operation="")


def header_revision(page):
    return page.locator("#stack-headline [data-header-revision]")


def card_revision(page):
    return page.locator("#stack-status [data-card-revision]")


def assert_header_matches_cards(page, number: int, timeout: int = 20_000) -> None:
    expect(card_revision(page)).to_have_text(f"r{number}", timeout=timeout)
    expect(header_revision(page)).to_have_text(f"r{number}", timeout=timeout)


def assert_title_in_zone(time_element, zone: str) -> None:
    """The hover text is the absolute time, written in `zone`, as the server writes it."""
    iso = time_element.get_attribute("datetime")
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    expect(time_element).to_have_attribute("title", absolute_text(moment, ZoneInfo(zone)))
    assert RELATIVE.match(time_element.inner_text().strip()), time_element.inner_text()


def test_times_in_the_chosen_zone_header_and_banners(visitor_factory, verified_user):
    from apps.accounts import services as account_services
    from apps.deployments import services

    user = verified_user(f"tz{RUN_ID}")
    account_services.set_time_zone(user, "Asia/Tokyo")
    stack = make_stack(user)
    # The browser is elsewhere: the preference wins over the browser's zone.
    visitor = visitor_factory("desktop", timezone_id="America/New_York", **DESKTOP)
    visitor.log_in(user.username)
    page = visitor.visit(f"/stacks/{stack.pk}/")
    visitor.assert_assets_loaded()
    page.evaluate("window.__sameDocument = true")

    first = page.locator("[data-live-activity] time[data-when]").first
    assert_title_in_zone(first, "Asia/Tokyo")
    first.hover()
    visitor.snap("hover-time-tokyo")
    assert_header_matches_cards(page, 1)

    # A scale done through the service layer while the page is open: header and cards
    # move to r2 together, without a reload (the page polls while the stack is busy).
    web = stack.services.get(name="web")
    services.scale(user, web, 2)
    assert_header_matches_cards(page, 2)
    finish_operation(stack)
    expect(page.locator("#stack-status")).to_have_attribute("data-busy", "false", timeout=20_000)

    # An operation started from another tab or the API while the page is idle: the page
    # notices it (no socket under this server: the slow poll) and follows it.
    stack.refresh_from_db()
    services.redeploy(user, stack)
    assert_header_matches_cards(page, 3, timeout=30_000)
    expect(page.locator("#stack-status")).to_have_attribute("data-busy", "true")
    finish_operation(stack)
    expect(page.locator("#stack-status")).to_have_attribute("data-busy", "false", timeout=20_000)

    # A scale from the page (htmx): its message stays while the operation runs, then
    # reads "Done" and goes.
    services_card = page.locator("article", has=page.get_by_role("heading", name="Services"))
    services_card.get_by_label("Replicas of worker").fill("3")
    services_card.get_by_label("Replicas of worker").press("Enter")
    toast = page.locator(".toast-area .flash", has_text="Scaling worker to 3.")
    expect(toast).to_have_attribute("data-operation", "")
    assert_header_matches_cards(page, 4)
    page.wait_for_timeout(7000)  # longer than a plain message lives
    expect(toast).to_be_visible()
    visitor.snap("operation-message")
    finish_operation(stack)
    expect(toast).to_contain_text("Done", timeout=20_000)
    expect(toast).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"

    # A page message after a redirect: tied to the stop; gone once stopped.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".page-header").get_by_role("button", name="Stop").click()
    page.wait_for_load_state("load")
    banner = page.locator(".flashes .flash", has_text=f"Stopping {stack.name}.")
    expect(banner).to_have_attribute("data-operation", "")
    page.wait_for_timeout(7000)
    expect(banner).to_be_visible()
    finish_operation(stack, state="stopped")
    expect(banner).to_have_count(0, timeout=20_000)
    visitor.snap("operation-done")

    # A plain success message goes by itself; it can be closed sooner.
    visitor.visit("/settings/")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save time zone").click()
    page.wait_for_load_state("load")
    saved = page.locator(".flash", has_text="Times are now shown in Europe/Paris.")
    expect(saved).to_be_visible()
    expect(saved.get_by_role("button", name="Dismiss")).to_be_visible()
    assert_title_in_zone(page.locator("time[data-when]").first, "Europe/Paris")
    expect(saved).to_have_count(0, timeout=10_000)
    # A refused zone is an error next to the field, and stays.
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save time zone").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text("is no time zone").first).to_be_visible()
    assert not visitor.broken, visitor.broken


def test_browser_zone_without_a_preference(visitor_factory, verified_user):
    user = verified_user(f"bz{RUN_ID}")
    stack = make_stack(user, "cafe")
    visitor = visitor_factory("browser-zone", timezone_id="America/New_York", **DESKTOP)
    visitor.log_in(user.username)
    page = visitor.visit(f"/stacks/{stack.pk}/")
    first = page.locator("[data-live-activity] time[data-when]").first
    assert_title_in_zone(first, "America/New_York")
    # The server learnt the zone from the browser: its own text is already in that zone.
    raw = page.request.get(visitor.url(f"/stacks/{stack.pk}/")).text()
    assert "(America/New_York)" in raw


def overflowing(page) -> list[str]:
    """Elements reaching past the right edge of the screen outside a scroll container."""
    return page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const out = [];
            for (const el of document.querySelectorAll("#content *")) {
                const box = el.getBoundingClientRect();
                if (box.width === 0 || box.right <= width + 1) continue;
                if (el.closest(".visually-hidden, thead")) continue;
                const scrolls = (node) =>
                    ["auto", "scroll"].includes(getComputedStyle(node).overflowX);
                let scroller = el.parentElement;  // inside a scroll container: fine
                while (scroller && scroller !== document.body && !scrolls(scroller)) {
                    scroller = scroller.parentElement;
                }
                if (scroller && scroller !== document.body) continue;
                out.push(`${el.tagName.toLowerCase()}.${el.className} right=${box.right}`);
            }
            return out.slice(0, 10);
        }"""
    )


def actions_in_reach(page) -> list[str]:
    """Every button, link and field of the page that can be seen must be clickable once
    scrolled into view (inside its scroll container too)."""
    problems = []
    actions = page.locator(
        "#content :is(button, a[href], input:not([type=hidden]), select, [role=button])"
    )
    width = page.viewport_size["width"]
    for i in range(actions.count()):
        action = actions.nth(i)
        if not action.is_visible():
            continue
        name = (action.get_attribute("aria-label") or action.inner_text() or "").strip()[:30]
        try:
            action.scroll_into_view_if_needed(timeout=3000)
            box = action.bounding_box()
            if box is None or box["x"] < -1 or box["x"] + box["width"] > width + 1:
                problems.append(f"{name!r} outside the screen: {box}")
                continue
            action.click(trial=True, timeout=3000)
        except Exception as exc:  # noqa: BLE001 -- collect every problem
            problems.append(f"{name!r}: {str(exc).splitlines()[0]}")
    return problems


def add_containers(stack) -> None:
    """Container rows as the worker records them (no engine here: nothing is started)."""
    from apps.deployments.models import Container
    from apps.hosts.models import Host

    host, _ = Host.objects.get_or_create(
        name=f"phone-host-{RUN_ID}", defaults={"endpoint": "tcp://192.0.2.1:2376"}
    )
    ports = [{"host_ip": "127.0.0.1", "host_port": 18080, "container_port": 80}]
    for n, (service, state) in enumerate([("web", "running"), ("worker", "exited")], 1):
        Container.objects.create(
            stack=stack,
            service=stack.services.get(name=service),
            host=host,
            engine_id=f"{RUN_ID}{n:058d}",
            name=f"{stack.tenant.slug}-{stack.name}-{service}-1-with-a-long-name",
            revision=1,
            state=state,
            health="healthy" if state == "running" else "",
            exit_code=None if state == "running" else 137,
            ports=ports if service == "web" else [],
        )


def test_stack_page_and_lists_on_a_phone(visitor_factory, verified_user):
    user = verified_user(f"ph{RUN_ID}")
    stack = make_stack(user, "phone")
    finish_operation(stack)
    add_containers(stack)
    desktop = visitor_factory("desktop", **DESKTOP)
    desktop.log_in(user.username)
    desktop.visit(f"/stacks/{stack.pk}/")
    desktop.visit("/stacks/")

    phone = visitor_factory("phone", **PHONE)
    phone.log_in(user.username)
    page = phone.visit(f"/stacks/{stack.pk}/")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the stack page scrolls sideways: {width}px wide"
    assert overflowing(page) == []
    # The services and containers tables became cards: each cell says what it is.
    expect(page.get_by_label("Replicas of web")).to_be_visible()
    expect(page.locator("#stack-status td[data-label=Scale]").first).to_be_visible()
    expect(page.locator("#stack-status td[data-label=Actions]").first).to_be_visible()
    problems = actions_in_reach(page)
    assert problems == [], problems
    phone.snap("stack-actions-checked")

    tenant = stack.tenant
    paths = ["/stacks/", f"/tenants/{tenant.slug}/", "/registry/", "/activity/"]
    paths += [f"/stacks/{stack.pk}/revisions/", "/settings/"]
    for path in paths:
        page = phone.visit(path)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways: {width}px wide"
        assert overflowing(page) == [], (path, overflowing(page))
        problems = actions_in_reach(page)
        assert problems == [], (path, problems)


@pytest.mark.engine
def test_live_header_and_banner_follow_real_operations(live_visitor, engine_tenant):  # noqa: F811
    """The real worker: the deploy's banner goes once the stack is healthy; a scale and a
    redeploy made through the service layer while the page is open move the header with
    the cards, over the event stream."""
    from apps.deployments import services

    visitor = live_visitor
    owner = engine_tenant.memberships.get().user
    daphne_password(owner)
    visitor.log_in(owner.username)
    page = visitor.page
    visitor.visit("/catalog/")
    page.get_by_label("Search templates").type("worker", delay=20)
    page.locator("#catalog-results .template-card").get_by_role(
        "link", name="Worker", exact=True
    ).click()
    page.wait_for_load_state("load")
    form = page.locator("#deploy-form")
    form.get_by_label("Stack name").fill("clock")
    form.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    page.evaluate("window.__sameDocument = true")
    banner = page.locator(".flashes .flash", has_text="Deploying clock.")
    expect(banner).to_have_attribute("data-operation", "")
    visitor.snap("deploying-banner")
    expect(page.locator(".stat", has_text="State")).to_contain_text("Healthy", timeout=120_000)
    expect(banner).to_have_count(0, timeout=20_000)
    assert_header_matches_cards(page, 1)

    stack = engine_tenant.stacks.get(name="clock")
    services.scale(owner, stack.services.get(name="worker"), 2)
    assert_header_matches_cards(page, 2)
    expect(page.locator(".stat", has_text="State")).to_contain_text("Healthy", timeout=120_000)
    stack.refresh_from_db()
    services.redeploy(owner, stack)
    assert_header_matches_cards(page, 3)
    expect(page.locator(".stat", has_text="State")).to_contain_text("Healthy", timeout=120_000)
    expect(page.locator("#stack-status")).to_have_attribute("data-busy", "false", timeout=30_000)
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert_title_in_zone(page.locator("[data-live-activity] time[data-when]").first, zone)
    visitor.snap("header-follows-cards")
