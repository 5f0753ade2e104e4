"""The shell page in a real browser (daphne, websockets, the real engine): it offers only
the shells the container has, says when it has none, and a shell that cannot start is
a readable sentence in the terminal, not the runtime's error."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.deployments.test_shell_detection import NO_SHELL, ONLY_SH, SLEEPER, shell_images
from tests.fixtures.browser import Visitor
from tests.fixtures.live import deploy
from tests.portal.test_live_pages import daphne, daphne_password, live_visitor

__all__ = ["daphne", "live_visitor", "shell_images"]  # fixtures used below

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def test_shell_page_offers_existing_shells_and_reads_failures(
    live_visitor: Visitor, engine_tenant, shell_images
):
    visitor = live_visitor
    owner = engine_tenant.memberships.get().user
    daphne_password(owner)
    env = engine_tenant.environments.get(slug="dev")
    (only_sh,) = deploy(env, "onlysh", SLEEPER, IMAGE=ONLY_SH, BUSYBOX="/bin/busybox")
    (bare,) = deploy(env, "bare", SLEEPER, IMAGE=NO_SHELL, BUSYBOX="/busybox")
    visitor.log_in(owner.username)

    page = visitor.visit(f"/stacks/containers/{only_sh.pk}/shell/")
    choice = page.get_by_label("Shell")
    expect(choice.locator("option")).to_have_count(1)
    expect(choice.locator("option")).to_have_text("/bin/sh")
    expect(page.locator("[data-shell]")).to_have_attribute("data-ready", "1")
    page.locator("[data-terminal]").click()
    page.keyboard.type("echo berth-$((40+2))\n", delay=20)
    rows = page.locator("[data-terminal] .xterm-rows > div")
    expect(rows.filter(has_text=re.compile(r"^\s*berth-42\s*$"))).to_have_count(1)
    visitor.snap("only-sh")

    # The shell vanishes from the image while the page is open: offered, then refused.
    page.evaluate(
        """() => { const s = document.querySelector('[data-shell-choice]');
        s.add(new Option('/bin/bash', '/bin/bash')); s.value = '/bin/bash';
        s.dispatchEvent(new Event('change')); }"""
    )
    status = page.locator("[data-shell] [data-live-status]")
    expect(status).to_have_text("Closed (shell not available)")
    terminal = page.locator("[data-terminal] .xterm-rows")
    expect(terminal).to_contain_text("/bin/bash does not exist in this container")
    assert "OCI runtime" not in terminal.inner_text()
    visitor.snap("refused-shell")

    page = visitor.visit(f"/stacks/containers/{bare.pk}/shell/")
    expect(page.locator("#no-shell")).to_contain_text("This container has no shell")
    expect(page.locator("[data-terminal]")).to_have_count(0)
    visitor.snap("no-shell")
    visitor.assert_assets_loaded()
