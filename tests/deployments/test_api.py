"""/api/v1/stacks/, services/ and revisions/: happy paths, 400s with fields, 404 across tenants."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.deployments import services
from apps.deployments.models import Stack
from tests.deployments.stack_fixtures import COMPOSE, needs_catalog_answers

pytestmark = pytest.mark.django_db


def client_for(user, **token_args) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="t", **token_args)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api(member):
    return client_for(member)


def test_create_from_compose_and_read_detail(api, env_a, django_capture_on_commit_callbacks):
    body = {"name": "shop", "environment": env_a.pk, "compose": COMPOSE}
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 201, response.content
    callbacks = [c for c in callbacks if "broadcast" not in c.__qualname__]  # live updates
    assert len(callbacks) == 1
    data = response.json()
    assert data["state"] == "deploying" and data["revision"] == 1
    assert data["tenant"] == "acme" and data["environment"] == env_a.pk
    assert [svc["name"] for svc in data["services"]] == ["web", "worker"]
    assert data["containers"] == []
    detail = api.get(f"/api/v1/stacks/{data['id']}/").json()
    assert detail["name"] == "shop"
    assert api.get("/api/v1/stacks/").json()["results"][0]["id"] == data["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Bad Name", "compose": COMPOSE}, "name"),
        ({"name": "shop", "compose": "services: {web: {image: x, privileged: true}}"}, "compose"),
        ({"name": "shop"}, "compose"),
        ({"name": "shop", "compose": COMPOSE, "tenant": "globex"}, "tenant"),
        ({"name": "shop", "compose": COMPOSE, "state": "healthy"}, "state"),
        ({"name": "shop", "template": "no-such-template"}, "template"),
        (
            {"name": "shop", "compose": "services: {web: {image: x, stop_grace_period: 72h}}"},
            "compose",
        ),
    ],
)
def test_create_errors_name_the_field(api, env_a, body, field):
    response = api.post("/api/v1/stacks/", {"environment": env_a.pk, **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Stack.objects.exists()


def test_foreign_environment_is_no_such_environment(outsider, env_a, tenant_b):
    client = client_for(outsider)
    body = {"name": "shop", "environment": env_a.pk, "compose": COMPOSE}
    response = client.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"environment": ["No such environment."]}


def test_viewer_reads_but_cannot_act(viewer, stack):
    client = client_for(viewer)
    assert client.get(f"/api/v1/stacks/{stack.pk}/").status_code == 200
    assert client.post(f"/api/v1/stacks/{stack.pk}/stop/").status_code == 403
    web = stack.services.get(name="web")
    response = client.post(f"/api/v1/services/{web.pk}/scale/", {"replicas": 2}, format="json")
    assert response.status_code == 403


def test_read_only_token_cannot_act(member, stack):
    client = client_for(member, read_only=True)
    assert client.post(f"/api/v1/stacks/{stack.pk}/stop/").status_code == 403


def test_foreign_stack_service_revision_are_404(outsider, tenant_b, stack):
    client = client_for(outsider)
    web = stack.services.get(name="web")
    revision = stack.current_revision
    for method, url in [
        ("get", f"/api/v1/stacks/{stack.pk}/"),
        ("post", f"/api/v1/stacks/{stack.pk}/stop/"),
        ("post", f"/api/v1/stacks/{stack.pk}/rollback/"),
        ("delete", f"/api/v1/stacks/{stack.pk}/"),
        ("get", f"/api/v1/services/{web.pk}/"),
        ("post", f"/api/v1/services/{web.pk}/scale/"),
        ("get", f"/api/v1/revisions/{revision.pk}/"),
        ("get", f"/api/v1/revisions/{revision.pk}/diff/"),
    ]:
        assert getattr(client, method)(url).status_code == 404, url
    assert client.get("/api/v1/stacks/").json()["results"] == []
    assert client.get(f"/api/v1/revisions/?stack={stack.pk}").json()["results"] == []


def test_actions(api, owner, stack):
    url = f"/api/v1/stacks/{stack.pk}"
    assert api.post(f"{url}/stop/").json()["desired_state"] == "stopped"
    response = api.post(f"{url}/stop/")
    assert response.status_code == 400 and "non_field_errors" in response.json()
    assert api.post(f"{url}/start/").json()["state"] == "deploying"
    assert api.post(f"{url}/restart/").json()["operation"] == "restart"
    assert api.post(f"{url}/cancel/").json()["cancel_requested"] is True
    assert api.post(f"{url}/stop/", {"junk": 1}, format="json").status_code == 400
    data = api.post(f"{url}/redeploy/", {"answers": {"TAG": "2"}}, format="json").json()
    assert data["revision"] == 2
    data = api.post(f"{url}/rollback/", {"revision": 1}, format="json").json()
    assert data["revision"] == 3
    response = api.post(f"{url}/rollback/", {"revision": 9}, format="json")
    assert response.status_code == 400 and "revision" in response.json()
    response = api.post(f"{url}/upgrade/", {"version": "2.0.0"}, format="json")
    assert response.status_code == 400 and "version" in response.json()
    assert api.delete(f"{url}/").status_code == 403  # members do not remove
    admin = client_for(owner)
    data = admin.delete(f"{url}/").json()
    assert (data["desired_state"], data["remove_volumes"]) == ("removed", False)
    stack.refresh_from_db()
    Stack.objects.filter(pk=stack.pk).update(desired_state="running")
    assert admin.delete(f"{url}/?volumes=true").json()["remove_volumes"] is True


def test_remove_with_a_bad_volumes_flag_is_refused_by_name(stack, owner):
    admin = client_for(owner)
    response = admin.delete(f"/api/v1/stacks/{stack.pk}/?volumes=maybe")
    assert response.status_code == 400 and "volumes" in response.json()
    stack.refresh_from_db()
    assert stack.desired_state != "removed"


def test_scale(api, stack):
    web = stack.services.get(name="web")
    url = f"/api/v1/services/{web.pk}/scale/"
    assert api.post(url, {"replicas": 3}, format="json").json()["scale"] == 3
    for bad in ({"replicas": 51}, {"replicas": "x"}, {}, {"replicas": 2, "image": "evil"}):
        response = api.post(url, bad, format="json")
        assert response.status_code == 400, bad
    assert api.post(url, {"replicas": 51}, format="json").json() == {
        "replicas": ["Give a number from 0 to 50."]
    }
    listed = api.get(f"/api/v1/services/?stack={stack.pk}").json()["results"]
    assert {svc["name"]: svc["scale"] for svc in listed} == {"web": 3, "worker": 1}


def test_revisions_list_detail_diff(api, member, stack):
    services.redeploy(member, stack, {"TAG": "2.0", "DB_PASSWORD": "hunter22"})
    listed = api.get(f"/api/v1/revisions/?stack={stack.pk}").json()["results"]
    assert [r["number"] for r in listed] == [2, 1]
    assert "image berth-demo/web:1.0 → berth-demo/web:2.0" in listed[0]["summary"]
    detail = api.get(f"/api/v1/revisions/{listed[0]['id']}/").json()
    assert detail["spec"]["project"]["services"]["web"]["image"] == "berth-demo/web:2.0"
    assert detail["answers"]["DB_PASSWORD"] == "••••••"
    assert "hunter22" not in str(detail)
    diff = api.get(f"/api/v1/revisions/{listed[0]['id']}/diff/").json()
    assert diff["from"] == 1 and diff["to"] == 2
    assert any(line.startswith("+") and "web:2.0" in line for line in diff["lines"])
    against = api.get(f"/api/v1/revisions/{listed[1]['id']}/diff/?against={listed[0]['id']}")
    assert against.json()["from"] == 2
    bad = api.get(f"/api/v1/revisions/{listed[0]['id']}/diff/?against=999999")
    assert bad.status_code == 400 and "against" in bad.json()
    assert api.get("/api/v1/revisions/?stack=abc").status_code == 400


def test_create_and_upgrade_from_template(api, env_a, template):
    needs_catalog_answers()
    body = {
        "name": "site",
        "environment": env_a.pk,
        "template": "demo-web",
        "version": "1.0.0",
        "answers": {"TITLE": "Mine"},
    }
    response = api.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["template"], data["version"]) == ("demo-web", "1.0.0")
    assert data["answers"]["ADMIN_PASSWORD"] == "••••••"
    url = f"/api/v1/stacks/{data['id']}/upgrade/"
    response = api.post(url, {"version": "2.0.0"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"answers": {"COLOR": ["This answer is required."]}}
    response = api.post(url, {"version": "2.0.0", "answers": {"COLOR": "red"}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == "2.0.0"
    response = api.post("/api/v1/stacks/", {**body, "name": "x", "version": "9.9"}, format="json")
    assert response.status_code == 400 and "version" in response.json()
    response = api.post(
        "/api/v1/stacks/", {**body, "name": "y", "answers": {"NOPE": "1"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"answers": {"NOPE": ["Not a question of this template version."]}}
    redeploy = f"/api/v1/stacks/{data['id']}/redeploy/"
    response = api.post(redeploy, {"answers": {"COLOR": "", "NOPE": "1"}}, format="json")
    assert response.status_code == 400
    assert response.json()["answers"] == {
        "COLOR": ["This answer is required."],
        "NOPE": ["Not a question of this template version."],
    }
