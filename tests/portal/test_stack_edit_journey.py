"""Changing a running stack in a browser: the Configuration card (secret masked, then
revealed), editing a template stack's answer (preview, apply, the new revision runs),
and a compose stack's editor pointing at the line of a YAML error. Desktop and phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.portal.test_journeys import wait_healthy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTES = """services:
  web:
    image: ${BERTH_REGISTRY}/library/web:1.0
    environment:
      MESSAGE: ${GREETING}
      API_TOKEN: ${API_TOKEN}
    ports:
      - "8080"
    stop_grace_period: 1s
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def deploy(engine_tenant):
    from apps.catalog.models import TemplateVersion
    from apps.deployments import services

    owner = engine_tenant.memberships.get().user
    env = engine_tenant.environments.get(slug="dev")
    version = TemplateVersion.objects.get(template__slug="web-page", version="1.0.0")
    page = services.create_stack(
        owner, env, "page", template_version=version, answers={"MESSAGE": "First words"}
    )
    notes = services.create_stack(
        owner,
        env,
        "notes",
        compose=NOTES,
        answers={"GREETING": "hi", "API_TOKEN": "tok-visible-only-on-reveal"},
    )
    return owner, page, notes


def no_sideways_scroll(visitor, width: int = 390) -> None:
    scroll = visitor.page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways: {scroll}px wide"


@pytest.mark.engine
def test_edit_an_answer_preview_apply(visitor_factory, engine_tenant):
    owner, stack, notes = deploy(engine_tenant)
    visitor = visitor_factory()
    visitor.log_in(owner.username)
    page = visitor.page
    visitor.visit(f"/stacks/{stack.pk}/")
    wait_healthy(page, containers=1, revision="r1")
    card = page.locator("#configuration")
    expect(card).to_contain_text("First words")
    card.scroll_into_view_if_needed()
    visitor.snap("configuration-card")

    card.get_by_role("button", name="Edit answers").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/edit/$"))
    expect(page.get_by_label("Message")).to_have_value("First words")
    page.get_by_label("Message").fill("Second words")
    visitor.snap("edit-filled")
    page.get_by_role("button", name="Preview changes").click()
    preview = page.locator("#change-preview")
    expect(preview).to_contain_text("variable MESSAGE changed (First words → Second words)")
    visitor.snap("edit-preview")
    stack.refresh_from_db()
    assert stack.current_revision.number == 1 and stack.answers["MESSAGE"] == "First words"

    preview.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/$"))
    expect(page.get_by_text("Redeploying page as r2.")).to_be_visible()
    wait_healthy(page, containers=1, revision="r2")
    expect(page.locator("#configuration")).to_contain_text("Second words")
    visitor.snap("applied-r2")
    stack.refresh_from_db()
    assert stack.answers["MESSAGE"] == "Second words"

    # Upgrade: 1.1.0's migrations answer its questions (none is asked); the changes
    # are shown before anything is written.
    page.locator(".page-header").get_by_role("button", name="Upgrade to 1.1.0").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/upgrade/$"))
    expect(page.get_by_text("No new question in 1.1.0.")).to_be_visible()
    expect(page.get_by_label("Greeting")).to_have_count(0)
    page.get_by_role("button", name="Preview changes").click()
    preview = page.locator("#change-preview")
    expect(preview).to_contain_text("web: image")
    expect(preview).to_contain_text("variable GREETING added")
    visitor.snap("upgrade-preview")
    stack.refresh_from_db()
    assert stack.current_revision.number == 2
    preview.get_by_role("button", name="Upgrade").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack.pk}/$"))
    wait_healthy(page, containers=1, revision="r3")
    expect(page.locator("#configuration")).to_contain_text("Second words")  # carried
    visitor.snap("upgraded-r3")

    phone = visitor_factory("phone", **PHONE)
    phone.log_in(owner.username)
    phone.visit(f"/stacks/{stack.pk}/edit/")
    no_sideways_scroll(phone)
    phone.page.get_by_label("Greeting").fill("Third words")
    phone.page.get_by_role("button", name="Preview changes").click()
    expect(phone.page.locator("#change-preview")).to_contain_text("Third words")
    no_sideways_scroll(phone)
    phone.snap("phone-edit-preview")


@pytest.mark.engine
def test_compose_stack_reveal_and_yaml_error_line(visitor_factory, engine_tenant):
    owner, _, notes = deploy(engine_tenant)
    for name, options in (("desktop", {}), ("phone", PHONE)):
        visitor = visitor_factory(name, **options)
        visitor.log_in(owner.username)
        page = visitor.page
        visitor.visit(f"/stacks/{notes.pk}/")
        card = page.locator("#configuration")
        row = card.locator("tr", has_text="API_TOKEN")
        expect(row).to_contain_text("••••••")
        assert "tok-visible-only-on-reveal" not in page.content()
        row.get_by_role("button", name="Reveal API_TOKEN").click()
        expect(row).to_contain_text("tok-visible-only-on-reveal")
        card.scroll_into_view_if_needed()
        visitor.snap("revealed")
        if name == "phone":
            no_sideways_scroll(visitor)

        card.get_by_role("button", name="Edit compose file").click()
        page.wait_for_url(re.compile(rf"/stacks/{notes.pk}/edit/$"))
        editor = page.get_by_label("Compose file")
        expect(editor).to_have_value(re.compile("library/web:1.0"))
        broken = NOTES.replace("    ports:\n", "    ports: [\n")
        editor.fill(broken)
        page.get_by_role("button", name="Preview changes").click()
        expect(page.locator(".field-invalid")).to_contain_text("invalid YAML")
        where = page.locator(".problem-lines")
        expect(where).to_contain_text(re.compile(r"Line \d+"))
        line = int(re.search(r"Line (\d+)", where.inner_text()).group(1))
        assert 6 <= line <= 9, where.inner_text()
        selected = page.evaluate(
            "(() => { const a = document.querySelector('textarea[name=compose]');"
            " return a.value.slice(a.selectionStart, a.selectionEnd); })()"
        )
        assert selected == broken.splitlines()[line - 1]
        visitor.snap("yaml-error-line")
        if name == "phone":
            no_sideways_scroll(visitor)
    notes.refresh_from_db()
    assert notes.current_revision.number == 1 and notes.compose == NOTES
