"""Live operations in a real browser, served by a real daphne (websockets through
Channels) over the test database, with the real Celery worker and Docker engine.

A new user signs in, deploys the Worker demo from the catalog and, without reloading,
watches it become healthy from the event stream; reads a log line the container printed
after the logs page loaded; runs `echo $HOSTNAME` in a shell; scales the service to 3 and
sees the containers appear; stops one from its row. Screenshots of every page go to
test-artifacts/browser/live/ (printed at the end of the run).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.fixtures.browser import (
    ARTIFACTS,
    BROWSER_REDIS_URL,
    PASSWORD,
    QUEUE,
    Visitor,
    _database_url,
    docker,
)
from tests.fixtures.daphne_server import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

LIVE_ARTIFACTS = ARTIFACTS / "live"
HEALTHY_TIMEOUT = 120_000  # ms


@pytest.fixture
def daphne(celery_worker) -> Iterator[Daphne]:
    """daphne on the test database and the worker's Redis (so the worker's events reach
    the pages' sockets through the same channel layer)."""
    LIVE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in LIVE_ARTIFACTS.glob("*.png"):
        old.unlink()
    log = LIVE_ARTIFACTS / "daphne.log"
    server = Daphne(
        _database_url(),
        BROWSER_REDIS_URL,
        log,
        BERTH_TEST_QUEUE=QUEUE,
        BERTH_REGISTRY_ADDR=settings.BERTH_REGISTRY_ADDR,  # the session's, set by the worker
    ).start()
    yield server
    server.stop()


@pytest.fixture
def live_visitor(browser, daphne, request) -> Iterator[Visitor]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    name = request.node.name.removeprefix("test_")
    yield Visitor(context.new_page(), daphne.url, name, LIVE_ARTIFACTS)
    context.close()


def daphne_password(user) -> None:
    """Tests hash passwords with MD5 (fast), which daphne's settings do not accept:
    store a PBKDF2 hash with few iterations instead (the stored count is honoured)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "livepagesalt", iterations=1000)
    user.save(update_fields=["password"])


def containers_table(page):
    return page.locator("article", has=page.get_by_role("heading", name="Containers"))


def worker_rows(page):
    return containers_table(page).locator("tbody tr", has_text=re.compile(r"worker #\d"))


def test_live_stack_logs_shell_scale(live_visitor: Visitor, engine_tenant):
    visitor = live_visitor
    owner = engine_tenant.memberships.get().user
    daphne_password(owner)
    visitor.log_in(owner.username)
    page = visitor.page

    # Deploy the Worker demo from the catalog.
    visitor.visit("/catalog/")
    page.get_by_label("Search templates").type("worker", delay=20)
    cards = page.locator("#catalog-results .template-card")
    cards.get_by_role("link", name="Worker", exact=True).click()
    page.wait_for_load_state("load")
    visitor.snap("worker-template")
    form = page.locator("#deploy-form")
    form.get_by_label("Stack name").fill("ticker")
    form.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    stack_url = page.url
    page.evaluate("window.__sameDocument = true")
    visitor.snap("stack-deploying")

    # Progress arrives over the websocket: healthy without a reload.
    expect(page.locator("[data-live-stack] [data-live-status]")).to_have_text("Live")
    expect(page.locator(".stat", has_text="State")).to_contain_text(
        "Healthy", timeout=HEALTHY_TIMEOUT
    )
    expect(worker_rows(page)).to_have_count(1)
    expect(worker_rows(page).first).to_contain_text("healthy")
    activity = page.locator("[data-live-activity]")
    expect(activity).to_contain_text("container.create")
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"
    ids = page.evaluate(
        "[...document.querySelectorAll('[data-live-activity] li')].map(li => li.dataset.eventId)"
    )
    assert len(ids) == len(set(ids)), f"an event was shown twice: {ids}"
    stats = page.locator("[data-stats-panel] tbody tr").first
    expect(stats.locator("[data-stat=cpu]")).to_contain_text("%")
    expect(stats.locator("[data-stat=memory]")).to_contain_text("MiB")
    visitor.snap("stack-healthy-live")

    # Logs: a line the container printed after the logs page loaded.
    worker_rows(page).first.get_by_role("link", name="Logs").click()
    page.wait_for_load_state("load")
    loaded = datetime.now(UTC).replace(microsecond=0)
    output = page.locator("[data-log-output]")
    expect(output).to_contain_text("tick")
    deadline = time.monotonic() + 20
    newer = []
    while time.monotonic() < deadline and not newer:
        stamps = re.findall(r"tick \d+ (\S+Z)", output.inner_text())
        newer = [s for s in stamps if datetime.fromisoformat(s) > loaded]
        time.sleep(0.5)
    assert newer, f"no line printed after {loaded:%H:%M:%S} reached the page"
    visitor.snap("container-logs")
    page.get_by_label("Search the log").fill("tick 3 ")
    visible = page.locator("[data-log-output] .log-line:visible")
    expect(visible).to_have_count(1)
    expect(visible.first).to_contain_text("tick 3 ")
    visitor.snap("container-logs-filtered")
    download = page.get_by_role("button", name="Download full log").get_attribute("href")
    response = page.request.get(visitor.url(download))
    assert response.ok and "attachment" in response.headers["content-disposition"]
    assert re.search(r"^\S+Z stdout tick 1 ", response.text(), re.M), response.text()[:300]

    # The service's merged log: each line names its container.
    page.goto(stack_url)
    page.locator("article", has=page.get_by_role("heading", name="Services")).get_by_role(
        "link", name="Logs"
    ).click()
    page.wait_for_load_state("load")
    expect(page.locator("[data-log-output] .log-container").first).to_contain_text("worker-1 |")
    visitor.snap("service-logs")

    # Shell: echo $HOSTNAME shows the container's host name.
    page.goto(stack_url)
    row = worker_rows(page).first
    shell_url = row.get_by_role("link", name="Shell").get_attribute("href")
    container = engine_tenant.stacks.get(name="ticker").containers.get(replica=1)
    hostname = docker("inspect", "-f", "{{.Config.Hostname}}", container.engine_id)
    visitor.visit(shell_url)
    expect(page.locator("[data-shell]")).to_have_attribute("data-ready", "1")
    page.locator("[data-terminal]").click()
    page.keyboard.type("echo $HOSTNAME\n", delay=20)
    # One terminal row holding only the host name: the command's output, not its echo.
    rows = page.locator("[data-terminal] .xterm-rows > div")
    expect(rows.filter(has_text=re.compile(rf"^\s*{re.escape(hostname)}\s*$"))).to_have_count(1)
    visitor.snap("shell")
    page.keyboard.type("exit\n")
    expect(page.locator("[data-shell] [data-live-status]")).to_have_text("Session ended")
    visitor.snap("shell-exited")

    # Scale to 3 from the stack page: the containers appear without a reload.
    page.goto(stack_url)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("[data-live-stack] [data-live-status]")).to_have_text("Live")
    services = page.locator("article", has=page.get_by_role("heading", name="Services"))
    replicas = services.get_by_label("Replicas of worker")
    replicas.fill("3")
    # A live refresh that lands after the typing (here forced, once the field lost the
    # focus and the edit is no longer recent) keeps the value typed but not yet sent.
    replicas.evaluate("el => { el.dataset.before = '1'; el.blur(); }")
    page.wait_for_timeout(3200)
    page.evaluate(
        """() => new Promise((done) => {
            document.body.addEventListener("htmx:afterSwap", () => done(), { once: true });
            window.berthStack.refresh(0);
        })"""
    )
    expect(page.locator("[data-scale-form] input[data-before]")).to_have_count(0)
    expect(replicas).to_have_value("3")
    services.get_by_role("button", name="Scale").click()
    expect(page.get_by_text("Scaling worker to 3.")).to_be_visible()
    expect(worker_rows(page)).to_have_count(3, timeout=HEALTHY_TIMEOUT)
    expect(page.locator(".stat", has_text="State")).to_contain_text(
        "Healthy", timeout=HEALTHY_TIMEOUT
    )
    expect(page.locator("[data-stats-panel] tbody tr")).to_have_count(3)
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"
    visitor.snap("scaled-to-3")

    # Stop the third one from its row (htmx, confirmed): it stays stopped.
    page.once("dialog", lambda dialog: dialog.accept())
    third = worker_rows(page).filter(has_text="worker #3")
    third.get_by_role("button", name="Stop").click()
    expect(third).to_contain_text("stopped by a user", timeout=60_000)
    expect(third).to_contain_text("exited")
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"
    visitor.snap("stopped-one")

    # The socket drops; an event is recorded meanwhile; the page reconnects by itself and
    # catches up from the event log: the missed event once, nothing twice.
    from apps.activity.services import record_event

    page.evaluate("const s = window.berthStack.socket; s.delay = 4000; s.ws.close(4000)")
    expect(page.locator("[data-live-stack] [data-live-status]")).to_contain_text("retrying")
    stack = engine_tenant.stacks.get(name="ticker")
    record_event(
        "stack.note", tenant=engine_tenant, obj=stack, message="recorded while disconnected"
    )
    expect(page.locator("[data-live-stack] [data-live-status]")).to_have_text("Live")
    expect(activity.locator("li", has_text="recorded while disconnected")).to_have_count(1)
    ids = page.evaluate(
        "[...document.querySelectorAll('[data-live-activity] li')].map(li => li.dataset.eventId)"
    )
    assert len(ids) == len(set(ids)), f"an event was shown twice: {ids}"
    assert page.evaluate("window.__sameDocument === true"), "the stack page reloaded itself"
    visitor.snap("caught-up-after-reconnect")
    print(f"\nlive browser screenshots: {LIVE_ARTIFACTS.resolve()}")
