"""Save a running stack as a template: the stack page's form and
POST /api/v1/stacks/{id}/save-as-template/ (roles, 404 across tenants, 400 with fields)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.activity.models import Event
from apps.catalog.models import Template
from tests.deployments.test_api import client_for
from tests.deployments.test_views import browser

pytestmark = pytest.mark.django_db


def url(stack) -> str:
    return f"/api/v1/stacks/{stack.pk}/save-as-template/"


def test_api_saves_the_stack_as_a_private_template(member, stack):
    body = {"slug": "my-shop", "version": "1.0.0", "name": "My shop"}
    response = client_for(member).post(url(stack), body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["slug"], data["name"], data["visibility"]) == ("my-shop", "My shop", "tenant")
    assert data["publisher"] == "acme" and data["category"] == "other"
    template = Template.objects.get(slug="my-shop")
    version = template.versions.get()
    assert version.compose == stack.compose
    assert Event.objects.filter(action="catalog.template.save_from_stack").exists()


def test_api_public_request_waits_for_approval(member, stack):
    body = {"slug": "shared", "version": "1.0.0", "visibility": "public"}
    response = client_for(member).post(url(stack), body, format="json")
    assert response.status_code == 201, response.content
    template = Template.objects.get(slug="shared")
    assert (template.visibility, template.approval) == ("public", "pending")
    assert template.name == stack.name  # unset metadata comes from the stack


@pytest.mark.parametrize(
    "body, field",
    [
        ({"version": "1.0.0"}, "slug"),
        ({"slug": "Bad Slug", "version": "1.0.0"}, "slug"),
        ({"slug": "ok"}, "version"),
        ({"slug": "ok", "version": "not-a-version"}, "version"),
        ({"slug": "ok", "version": "1.0.0", "visibility": "everyone"}, "visibility"),
        ({"slug": "ok", "version": "1.0.0", "category": "nope"}, "category"),
        ({"slug": "ok", "version": "1.0.0", "tenant": "globex"}, "tenant"),
    ],
)
def test_api_bad_input_is_400_naming_the_field(member, stack, body, field):
    response = client_for(member).post(url(stack), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Template.objects.filter(publisher__isnull=False).exists()


def test_api_same_version_twice_is_refused(member, stack):
    client = client_for(member)
    body = {"slug": "twice", "version": "1.0.0"}
    assert client.post(url(stack), body, format="json").status_code == 201
    again = client.post(url(stack), body, format="json")
    assert again.status_code == 400 and "version" in again.json()


def test_api_viewer_is_refused_and_foreign_stack_is_404(viewer, outsider, tenant_b, stack):
    body = {"slug": "mine", "version": "1.0.0"}
    assert client_for(viewer).post(url(stack), body, format="json").status_code == 403
    assert client_for(outsider).post(url(stack), body, format="json").status_code == 404
    assert not Template.objects.filter(slug="mine").exists()


def test_api_read_only_token_is_refused(member, stack):
    client = client_for(member, read_only=True)
    response = client.post(url(stack), {"slug": "ro", "version": "1.0.0"}, format="json")
    assert response.status_code == 403


def test_page_form_saves_and_shows_errors(member, viewer, outsider, tenant_b, stack):
    page = reverse("stacks:save_template", args=[stack.pk])
    detail = browser(member).get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert page in detail
    client = browser(member)
    assert client.get(page).status_code == 200
    bad = client.post(page, {"slug": "Bad Slug", "version": "1.0.0", "visibility": "tenant"})
    assert bad.status_code == 200 and "lowercase letters" in bad.content.decode()
    response = client.post(
        page, {"slug": "from-page", "name": "", "version": "1.0.0", "visibility": "tenant"}
    )
    template = Template.objects.get(slug="from-page")
    assert response.status_code == 302
    assert response["Location"] == reverse("catalog:detail", args=[template.pk])
    assert template.publisher == stack.tenant and template.name == stack.name
    assert browser(viewer).get(page).status_code == 403
    assert browser(outsider).get(page).status_code == 404
    assert browser(outsider).post(page, {"slug": "x", "version": "1.0.0"}).status_code == 404


# --- secret answers never become defaults ------------------------------------------------------


def saved_questions(slug: str) -> dict[str, dict]:
    version = Template.objects.get(slug=slug).versions.get()
    return {q["variable"]: q for q in version.questions}


def stored_text(slug: str) -> str:
    version = Template.objects.get(slug=slug).versions.get()
    return f"{version.compose}{version.config}{version.questions}{version.template.__dict__}"


def test_api_template_stack_keeps_its_password_out_of_the_defaults(
    member, env_a, template, django_capture_on_commit_callbacks
):
    from apps.deployments import services

    _, v1, _ = template
    answers = {"TAG": "1.2", "TITLE": "Hello", "ADMIN_PASSWORD": "hunter2-very-secret"}
    with django_capture_on_commit_callbacks():
        stack = services.create_stack(member, env_a, "blog", template_version=v1, answers=answers)
    response = client_for(member).post(
        url(stack), {"slug": "blog", "version": "1.0.0", "visibility": "public"}, format="json"
    )
    assert response.status_code == 201, response.content
    questions = saved_questions("blog")
    assert questions["TITLE"]["default"] == "Hello"
    assert questions["ADMIN_PASSWORD"]["type"] == "password"
    assert questions["ADMIN_PASSWORD"]["default"] is None
    assert "hunter2" not in stored_text("blog") and "hunter2" not in response.content.decode()


def test_page_compose_stack_variables_that_look_secret_become_password_questions(
    member, env_a, django_capture_on_commit_callbacks
):
    from apps.deployments import services
    from tests.deployments.stack_fixtures import COMPOSE

    compose = COMPOSE.replace(
        'GREETING: "${GREETING:-hello}"',
        'GREETING: "${GREETING}", DB_PASSWORD: "${DB_PASSWORD}", '
        'APITOKEN: "${APITOKEN}", DATABASE_URL: "${DATABASE_URL}"',
    )
    answers = {
        "GREETING": "hi there",
        "DB_PASSWORD": "hunter2-db",
        "APITOKEN": "hunter2-token",
        "DATABASE_URL": "postgres://shop:hunter2-url@db/shop",
    }
    with django_capture_on_commit_callbacks():
        stack = services.create_stack(member, env_a, "shop", compose=compose, answers=answers)
    page = reverse("stacks:save_template", args=[stack.pk])
    response = browser(member).post(
        page, {"slug": "shop-copy", "version": "1.0.0", "visibility": "tenant"}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    questions = saved_questions("shop-copy")
    assert questions["GREETING"]["default"] == "hi there"
    for name in ("DB_PASSWORD", "APITOKEN", "DATABASE_URL"):
        assert questions[name]["type"] == "password" and questions[name]["default"] is None
        assert questions[name]["required"] is True
    assert "hunter2" not in stored_text("shop-copy")
