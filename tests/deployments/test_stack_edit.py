"""Changing a running stack from the portal: previews write nothing and say what would
change (secrets masked), Apply redeploys, the Configuration card masks secrets and a
member reveals one (recorded), the compose editor points at a problem's line."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from apps.activity.models import Event
from apps.compose.errors import ComposeError, Problem
from apps.deployments import configuration, services
from apps.deployments.models import Revision, Stack
from apps.deployments.revisions import MASK
from tests.conftest import login
from tests.deployments.stack_fixtures import COMPOSE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def tstack(owner, env_a, template, django_capture_on_commit_callbacks):
    _, v1, _ = template
    with django_capture_on_commit_callbacks():
        return services.create_stack(
            owner,
            env_a,
            "site",
            template_version=v1,
            answers={"TAG": "1.0", "TITLE": "Hello", "ADMIN_PASSWORD": "hunter2-very-secret"},
        )


def counts(stack: Stack) -> tuple:
    stack.refresh_from_db()
    return (
        Revision.objects.filter(stack=stack).count(),
        Event.objects.filter(object_type="stack", object_id=str(stack.pk)).count(),
        stack.answers,
        stack.compose,
        stack.current_revision_id,
        stack.operation,
    )


# --- the service layer ---------------------------------------------------------------------


def test_preview_of_an_answer_change_writes_nothing_and_lists_it(member, tstack):
    before = counts(tstack)
    preview = services.preview_redeploy(member, tstack, answers={"TAG": "1.1"})
    assert counts(tstack) == before
    assert preview["changed"] is True
    assert "web: image berth-demo/web:1.0 → berth-demo/web:1.1" in preview["lines"]
    assert "variable TAG changed (1.0 → 1.1)" in preview["lines"]
    assert preview["summary"] == "; ".join(preview["lines"])


def test_preview_masks_secrets_in_lines_and_diff(member, tstack):
    preview = services.preview_redeploy(member, tstack, answers={"ADMIN_PASSWORD": "new-pass-1234"})
    text = repr(preview)
    assert "new-pass-1234" not in text and "hunter2-very-secret" not in text
    assert f"variable ADMIN_PASSWORD changed ({MASK} → {MASK})" in preview["lines"]
    assert "new-pass-1234" not in "\n".join(preview["diff"])


def test_nothing_would_change(member, tstack, stack):
    assert services.preview_redeploy(member, tstack)["changed"] is False
    assert services.preview_redeploy(member, tstack, answers={"TITLE": "Hello"})["changed"] is False
    assert services.preview_redeploy(member, stack, compose=stack.compose)["changed"] is False


def test_preview_refuses_what_redeploy_refuses_with_the_same_errors(member, tstack, stack):
    for call in (services.preview_redeploy, services.redeploy):
        with pytest.raises(ValidationError) as bad:
            call(member, tstack, answers={"NOPE": "x"})
        assert "NOPE" in bad.value.message_dict
        with pytest.raises(ValidationError) as bad:
            call(member, tstack, compose="services: {web: {image: x}}")
        assert list(bad.value.message_dict) == ["compose"]
        with pytest.raises(ValidationError) as bad:
            call(member, stack, compose="services: {web: {image: x, privileged: true}}")
        assert "privileged" in " ".join(bad.value.message_dict["compose"])


def test_viewer_may_not_preview(viewer, tstack):
    with pytest.raises(PermissionDenied):
        services.preview_redeploy(viewer, tstack, answers={"TAG": "2"})


def test_compose_redeploy_replaces_the_file(member, stack, django_capture_on_commit_callbacks):
    edited = COMPOSE.replace("berth-demo/worker:1.0", "berth-demo/worker:1.1")
    preview = services.preview_redeploy(member, stack, compose=edited)
    assert preview["lines"] == ["worker: image berth-demo/worker:1.0 → berth-demo/worker:1.1"]
    with django_capture_on_commit_callbacks():
        services.redeploy(member, stack, compose=edited)
    stack.refresh_from_db()
    assert stack.compose == edited
    assert stack.current_revision.number == 2
    assert stack.current_revision.compose == edited
    assert stack.current_revision.summary == preview["summary"]


def test_a_change_the_summary_has_no_word_for_is_still_a_change(member, stack):
    edited = COMPOSE.replace(
        "image: berth-demo/worker:1.0", "image: berth-demo/worker:1.0\n    command: [sleep, '9']"
    )
    preview = services.preview_redeploy(member, stack, compose=edited)
    assert preview["changed"] and preview["lines"] == ["worker: settings changed (see the diff)"]
    comment = "# a comment\n" + COMPOSE
    preview = services.preview_redeploy(member, stack, compose=comment)
    assert preview["changed"] and "compose file text changed" in preview["lines"][0]


def test_preview_upgrade_writes_nothing(member, tstack, template):
    _, _, v2 = template
    before = counts(tstack)
    preview = services.preview_upgrade(member, tstack, v2, {"COLOR": "blue"})
    assert counts(tstack) == before
    assert preview["changed"]
    assert "variable COLOR added" in preview["lines"]
    assert "hunter2-very-secret" not in repr(preview)
    with pytest.raises(ValidationError) as bad:
        services.preview_upgrade(member, tstack, v2, {})
    assert "COLOR" in bad.value.message_dict


def test_fingerprint_is_stable_and_names_the_change(member, tstack):
    a = services.preview_redeploy(member, tstack, answers={"TAG": "1.1"})["fingerprint"]
    b = services.preview_redeploy(member, tstack, answers={"TAG": "1.1"})["fingerprint"]
    c = services.preview_redeploy(member, tstack, answers={"TAG": "1.2"})["fingerprint"]
    assert a == b != c


# --- configuration card and reveal -----------------------------------------------------------


def test_answer_rows_mask_secrets(tstack, stack):
    rows = {r.variable: r for r in configuration.answer_rows(tstack)}
    assert rows["ADMIN_PASSWORD"].secret and rows["ADMIN_PASSWORD"].shown == MASK
    assert rows["TITLE"].shown == "Hello" and rows["TITLE"].label == "Title"
    stack.answers = {"DB_PASSWORD": "x1", "GREETING": "hi", "URL": "postgres://u:p@db/x"}
    rows = {r.variable: r for r in configuration.answer_rows(stack)}
    assert rows["DB_PASSWORD"].secret and rows["URL"].secret and not rows["GREETING"].secret


def test_problem_lines_from_yaml_and_from_paths():
    text = "services:\n  web:\n    image: x\n    ports: ['nope']\n"
    error = ComposeError([Problem("services.web.ports[0]", "service 'web': ports[0]: bad")])
    assert configuration.problem_lines(text, error) == [(4, "service 'web': ports[0]: bad")]
    wrapped = ValidationError("x")
    wrapped.__cause__ = ComposeError("invalid YAML at line 3, column 2: found a tab")
    assert configuration.problem_lines("a: [\n", wrapped) == [
        (3, "invalid YAML at line 3, column 2: found a tab")
    ]
    assert configuration.problem_lines(text, ValidationError("no compose")) == []


def test_stack_page_card_masks_and_reveal_is_for_members(member, viewer, tstack):
    page = login(Client(), viewer).get(reverse("stacks:detail", args=[tstack.pk]))
    body = page.content.decode()
    assert "Configuration" in body and MASK in body and "Hello" in body
    assert "hunter2-very-secret" not in body
    assert "Reveal" not in body and reverse("stacks:edit", args=[tstack.pk]) not in body
    url = reverse("stacks:reveal_answer", args=[tstack.pk])
    assert login(Client(), viewer).post(url, {"name": "ADMIN_PASSWORD"}).status_code == 403

    client = login(Client(), member)
    body = client.get(reverse("stacks:detail", args=[tstack.pk])).content.decode()
    assert "Reveal" in body and "hunter2-very-secret" not in body
    revealed = client.post(url, {"name": "ADMIN_PASSWORD"}, HTTP_HX_REQUEST="true")
    assert revealed.status_code == 200 and "hunter2-very-secret" in revealed.content.decode()
    assert revealed["Cache-Control"] == "no-store"
    event = Event.objects.get(action="stack.answers_revealed")
    assert event.actor == member and "Answers revealed" in event.message
    assert "hunter2" not in event.message + str(event.data)
    assert client.post(url, {"name": "TITLE"}).status_code == 400
    assert client.get(url).status_code == 405


# --- the edit page ---------------------------------------------------------------------------


def test_edit_page_preview_then_apply(member, tstack, django_capture_on_commit_callbacks):
    client = login(Client(), member)
    url = reverse("stacks:edit", args=[tstack.pk])
    page = client.get(url).content.decode()
    assert 'value="Hello"' in page and "hunter2-very-secret" not in page
    data = {"TAG": "1.0", "TITLE": "Changed", "ADMIN_PASSWORD": ""}
    before = counts(tstack)
    preview = client.post(url, {**data, "action": "preview"})
    body = preview.content.decode()
    assert preview.status_code == 200 and counts(tstack) == before
    assert "variable TITLE changed (Hello → Changed)" in body
    assert "hunter2-very-secret" not in body
    fingerprint = preview.context["preview"]["fingerprint"]
    stale = client.post(
        url, {**data, "TITLE": "Other", "action": "apply", "fingerprint": fingerprint}
    )
    assert stale.status_code == 200 and "not what you previewed" in stale.content.decode()
    assert counts(tstack) == before
    with django_capture_on_commit_callbacks():
        done = client.post(url, {**data, "action": "apply", "fingerprint": fingerprint})
    assert done.status_code == 302
    tstack.refresh_from_db()
    assert tstack.answers["TITLE"] == "Changed"
    assert tstack.answers["ADMIN_PASSWORD"] == "hunter2-very-secret"  # blank kept it
    assert tstack.current_revision.number == 2


def test_edit_page_nothing_changes_and_errors_on_fields(member, tstack):
    client = login(Client(), member)
    url = reverse("stacks:edit", args=[tstack.pk])
    data = {"TAG": "1.0", "TITLE": "Hello", "ADMIN_PASSWORD": ""}
    same = client.post(url, {**data, "action": "apply", "fingerprint": "x"}, follow=True)
    assert "Nothing would change" in same.content.decode()
    assert Revision.objects.filter(stack=tstack).count() == 1
    bad = client.post(url, {**data, "TITLE": "a\x01b", "action": "preview"})
    # The catalog's message for that answer, under its field; nothing previewed.
    assert bad.context["form"].errors["TITLE"] == ["Must be a single line of text."]
    assert "preview" not in bad.context


def test_compose_editor_points_at_the_line(member, stack):
    client = login(Client(), member)
    url = reverse("stacks:edit", args=[stack.pk])
    page = client.get(url).content.decode()
    assert "berth-demo/worker:1.0" in page and "compose-editor" in page
    broken = "services:\n  web:\n    image: x\n   bad: [\n"
    response = client.post(url, {"compose": broken, "action": "preview"})
    body = response.content.decode()
    assert response.status_code == 200 and "invalid YAML" in body
    assert 'data-goto-line="' in body and "Line " in body
    assert response.context["form"].errors["compose"]


def test_viewer_cannot_open_the_edit_page(viewer, tstack):
    assert login(Client(), viewer).get(reverse("stacks:edit", args=[tstack.pk])).status_code == 403


def test_upgrade_page_previews_first(member, tstack, template, django_capture_on_commit_callbacks):
    _, _, v2 = template
    client = login(Client(), member)
    url = reverse("stacks:upgrade", args=[tstack.pk])
    form = client.get(url).context["form"]
    assert set(form.fields) == {"version", "COLOR"}  # only the new question is asked
    before = counts(tstack)
    preview = client.post(url, {"version": "2.0.0", "COLOR": "red", "action": "preview"})
    assert counts(tstack) == before
    body = preview.content.decode()
    assert "variable COLOR added" in body and "hunter2-very-secret" not in body
    fingerprint = preview.context["preview"]["fingerprint"]
    with django_capture_on_commit_callbacks():
        done = client.post(
            url, {"version": "2.0.0", "COLOR": "red", "action": "apply", "fingerprint": fingerprint}
        )
    assert done.status_code == 302
    tstack.refresh_from_db()
    assert tstack.template_version == v2 and tstack.answers["COLOR"] == "red"


def test_strategy_is_offered_only_where_it_acts(member, stack, django_capture_on_commit_callbacks):
    from apps.deployments import routes

    client = login(Client(), member)
    url = reverse("stacks:edit", args=[stack.pk])
    assert "strategy" not in client.get(url).context["form"].fields  # no route: no canary
    routes.create_route(member, stack.services.get(name="web"), hostname="e.localhost", port=80)
    assert "strategy" in client.get(url).context["form"].fields
    edited = COMPOSE.replace("berth-demo/worker:1.0", "berth-demo/worker:1.1")
    data = {"compose": edited, "strategy": "canary"}
    preview = client.post(url, {**data, "action": "preview"}).context["preview"]
    with django_capture_on_commit_callbacks():
        done = client.post(url, {**data, "action": "apply", "fingerprint": preview["fingerprint"]})
    assert done.status_code == 302
    stack.refresh_from_db()
    berth = stack.current_revision.spec["berth"]["services"]
    assert berth["web"]["upgrade"]["strategy"] == "canary"


def test_edit_page_asks_an_admin_to_confirm_new_exceptions(
    superuser, stack, django_capture_on_commit_callbacks
):
    """A compose edit that brings privileged mode: the preview names it and shows the
    box before Apply; Apply without the box ticked is refused on the box, with it done."""
    client = login(Client(), superuser)
    url = reverse("stacks:edit", args=[stack.pk])
    page = client.get(url).content.decode()
    assert 'type="checkbox" name="confirm_exceptions"' not in page  # nothing to confirm yet
    privileged = stack.compose.replace(
        "    image: berth-demo/worker:1.0\n",
        "    image: berth-demo/worker:1.0\n    privileged: true\n",
    )
    preview = client.post(url, {"compose": privileged, "action": "preview"})
    body = preview.content.decode()
    assert preview.context["preview"]["exceptions_needed"] == ["privileged mode (service worker)"]
    assert "data-exceptions-needed" in body
    assert 'type="checkbox" name="confirm_exceptions"' in body
    fingerprint = preview.context["preview"]["fingerprint"]
    before = counts(stack)
    refused = client.post(
        url, {"compose": privileged, "action": "apply", "fingerprint": fingerprint}
    )
    assert refused.status_code == 200 and counts(stack) == before
    assert "privileged mode" in " ".join(refused.context["form"].errors["confirm_exceptions"])
    with django_capture_on_commit_callbacks():
        done = client.post(
            url,
            {
                "compose": privileged,
                "action": "apply",
                "fingerprint": fingerprint,
                "confirm_exceptions": "on",
            },
        )
    assert done.status_code == 302
    stack.refresh_from_db()
    assert stack.current_revision.number == 2 and "privileged: true" in stack.compose
