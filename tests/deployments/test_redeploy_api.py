"""POST /api/v1/stacks/<id>/redeploy/ with `compose` and `dry_run`: a compose stack's file
is replaced, a template stack refuses one (400 on `compose`), a bad file is a 400 on
`compose`, and a dry run answers what would change and writes nothing."""

from __future__ import annotations

import pytest

from apps.activity.models import Event
from apps.deployments import services
from apps.deployments.models import Revision
from apps.deployments.revisions import MASK
from tests.deployments.stack_fixtures import COMPOSE
from tests.deployments.test_api import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(member):
    return client_for(member)


def writes(stack) -> tuple:
    stack.refresh_from_db()
    return (
        Revision.objects.filter(stack=stack).count(),
        Event.objects.count(),
        stack.compose,
        stack.answers,
    )


def test_dry_run_says_what_would_change_and_writes_nothing(api, stack):
    url = f"/api/v1/stacks/{stack.pk}/redeploy/"
    edited = COMPOSE.replace("berth-demo/worker:1.0", "berth-demo/worker:2.0")
    before = writes(stack)
    response = api.post(url, {"compose": edited, "dry_run": True}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert writes(stack) == before
    assert data["dry_run"] is True and data["changed"] is True
    assert data["lines"] == ["worker: image berth-demo/worker:1.0 → berth-demo/worker:2.0"]
    assert data["changes"][0]["kind"] == "image" and data["changes"][0]["to"].endswith("2.0")
    assert "fingerprint" not in data
    same = api.post(url, {"dry_run": True}, format="json").json()
    assert same["changed"] is False and same["summary"] == "No changes"


def test_compose_redeploy_replaces_the_file(api, stack, django_capture_on_commit_callbacks):
    url = f"/api/v1/stacks/{stack.pk}/redeploy/"
    edited = COMPOSE.replace("berth-demo/worker:1.0", "berth-demo/worker:2.0")
    with django_capture_on_commit_callbacks():
        response = api.post(url, {"compose": edited}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["revision"] == 2 and response.json()["compose"] == edited


@pytest.mark.parametrize(
    "text,word",
    [
        ("services:\n  web:\n    image: [\n", "line"),
        ("services: {web: {image: x, privileged: true}}", "privileged"),
        ("   ", "compose file"),
    ],
)
def test_bad_compose_is_a_400_on_compose(api, stack, text, word):
    url = f"/api/v1/stacks/{stack.pk}/redeploy/"
    before = writes(stack)
    for dry_run in (True, False):
        response = api.post(url, {"compose": text, "dry_run": dry_run}, format="json")
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["compose"]
        assert word in " ".join(response.json()["compose"])
    assert writes(stack) == before


def test_template_stack_refuses_compose_and_masks_secrets(member, env_a, template, api):
    _, v1, _ = template
    stack = services.create_stack(
        member, env_a, "site", template_version=v1, answers={"ADMIN_PASSWORD": "s3cret-value"}
    )
    url = f"/api/v1/stacks/{stack.pk}/redeploy/"
    response = api.post(url, {"compose": COMPOSE}, format="json")
    assert response.status_code == 400 and "compose" in response.json()
    body = {"answers": {"ADMIN_PASSWORD": "other-value-1"}, "dry_run": True}
    data = api.post(url, body, format="json").json()
    assert f"variable ADMIN_PASSWORD changed ({MASK} → {MASK})" in data["lines"]
    assert "s3cret-value" not in str(data) and "other-value-1" not in str(data)
    bad = api.post(url, {"answers": {"NOPE": "1"}, "dry_run": True}, format="json")
    assert bad.status_code == 400 and "NOPE" in bad.json()["answers"]


def test_viewer_may_not_dry_run(viewer, stack):
    url = f"/api/v1/stacks/{stack.pk}/redeploy/"
    assert client_for(viewer).post(url, {"dry_run": True}, format="json").status_code == 403
