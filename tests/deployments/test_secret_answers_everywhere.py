"""One rule for which answers are secret, applied wherever they are shown.

A compose stack's variable whose value carries credentials (a DSN, a URL with
user:password@) or whose name says AUTH, SALT, PWD, CERT... was masked on the stack's
Configuration card but shown in the clear to viewers by the API, the revision summary
and the container inspect page (tested on the real engine in test_inventory_engine.py),
and to members by a preview without any record.
Also here: the API's partial `answers` on a compose stack keeps the others, and the
API's policy-exception confirmation ends with its request even when the request fails.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.deployments import exceptions, services
from tests.conftest import login

pytestmark = pytest.mark.django_db

SECRET = "postgres://app:Hunter2Pw@db/app"
COMPOSE = """
services:
  web:
    image: "berth-demo/web:1.0"
    environment: {DATABASE_URL: "${DB_URL}", SENTRY_DSN: "${SENTRY_DSN}", A: "${A}"}
"""


@pytest.fixture
def cstack(owner, env_a, django_capture_on_commit_callbacks):
    answers = {"DB_URL": SECRET, "SENTRY_DSN": "https://k3y:s3cr3t@sentry.example/1", "A": "1"}
    with django_capture_on_commit_callbacks():
        return services.create_stack(owner, env_a, "app", compose=COMPOSE, answers=answers)


def test_the_card_and_the_api_mask_the_same_answers(viewer, cstack):
    client = login(Client(), viewer)
    page = client.get(reverse("stacks:detail", args=[cstack.pk])).content.decode()
    detail = client.get(f"/api/v1/stacks/{cstack.pk}/").content.decode()
    revision = client.get(f"/api/v1/revisions/{cstack.current_revision_id}/").content.decode()
    for shown in (page, detail, revision):
        assert "Hunter2Pw" not in shown and "s3cr3t" not in shown


def test_summaries_and_previews_mask_old_and_new_values(
    owner, member, viewer, cstack, django_capture_on_commit_callbacks
):
    preview = services.preview_redeploy(member, cstack, answers={"DB_URL": "postgres://a:b2@c/d"})
    assert "Hunter2Pw" not in repr(preview) and "b2@" not in repr(preview)
    with django_capture_on_commit_callbacks():
        services.redeploy(owner, cstack, answers={"DB_URL": "postgres://app:N3wPw@db/app"})
    page = login(Client(), viewer).get(reverse("stacks:revisions", args=[cstack.pk]))
    body = page.content.decode()
    assert "Hunter2Pw" not in body and "N3wPw" not in body


def test_partial_answers_keep_the_others_and_null_removes(
    owner, cstack, session_api, django_capture_on_commit_callbacks
):
    url = f"/api/v1/stacks/{cstack.pk}/redeploy/"
    with django_capture_on_commit_callbacks():
        done = session_api(owner).post(url, {"answers": {"A": "2"}}, format="json")
    assert done.status_code == 200, done.content
    cstack.refresh_from_db()
    assert cstack.answers == {**cstack.answers, "A": "2", "DB_URL": SECRET}
    with django_capture_on_commit_callbacks():
        session_api(owner).post(url, {"answers": {"SENTRY_DSN": None}}, format="json")
    cstack.refresh_from_db()
    assert "SENTRY_DSN" not in cstack.answers and cstack.answers["DB_URL"] == SECRET


def test_a_confirmation_ends_with_its_request_even_a_failed_one(superuser, cstack, monkeypatch):
    from apps.deployments.api import views as api_views

    def broken(*args, **kwargs):
        raise RuntimeError("a bug past the request's parsing")

    monkeypatch.setattr(api_views.services, "redeploy", broken)
    client = login(Client(raise_request_exception=False), superuser)
    failed = client.post(
        f"/api/v1/stacks/{cstack.pk}/redeploy/",
        {"answers": {"A": "x"}, "confirm_exceptions": True},
        content_type="application/json",
    )
    assert failed.status_code == 500
    assert exceptions.is_confirmed() is False
