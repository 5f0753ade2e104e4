"""Stack pages: they render, forms show errors next to fields, actions call the services."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from apps.deployments import services
from apps.deployments.models import Stack
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from tests.conftest import login
from tests.deployments.stack_fixtures import COMPOSE, needs_catalog_answers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def browser(user, env=None) -> Client:
    client = login(Client(), user)
    if env is not None:
        session = client.session
        session[SESSION_TENANT] = env.tenant_id
        session[SESSION_ENVIRONMENT] = env.pk
        session.save()
    return client


def test_list_shows_the_current_environments_stacks(member, env_a, stack, tenant_a):
    services.create_stack(
        member, tenant_a.environments.get(slug="prod"), "elsewhere", compose=COMPOSE
    )
    body = browser(member, env_a).get(reverse("stacks:list")).content.decode()
    assert "shop" in body and "elsewhere" not in body
    assert reverse("stacks:create") in body


def test_deploy_form_creates_and_shows_errors(member, env_a):
    client = browser(member, env_a)
    assert client.get(reverse("stacks:create")).status_code == 200
    bad = client.post(reverse("stacks:create"), {"name": "Bad Name", "compose": COMPOSE})
    assert bad.status_code == 200
    assert "DNS label" in bad.content.decode() or "lowercase" in bad.content.decode().lower()
    refused = client.post(
        reverse("stacks:create"),
        {"name": "shop", "compose": "services: {web: {image: x, privileged: true}}"},
    )
    assert refused.status_code == 200 and "privileged" in refused.content.decode()
    response = client.post(reverse("stacks:create"), {"name": "shop", "compose": COMPOSE})
    stack = Stack.objects.get(name="shop")
    assert response.status_code == 302
    assert response["Location"] == reverse("stacks:detail", args=[stack.pk])


def test_stack_page_and_partial(member, viewer, stack):
    body = browser(member).get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert "berth-demo/web:1.0" in body and "worker" in body
    assert 'hx-trigger="every 3s"' in body  # deploying: refreshes itself
    assert reverse("stacks:stop", args=[stack.pk]) in body
    partial = browser(member).get(reverse("stacks:status", args=[stack.pk]))
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    viewer_body = browser(viewer).get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert reverse("stacks:stop", args=[stack.pk]) not in viewer_body
    Stack.objects.filter(pk=stack.pk).update(state="healthy", operation="")
    body = browser(member).get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert 'hx-trigger="every 3s"' not in body


def test_actions_scale_and_remove(owner, member, viewer, stack):
    client = browser(member)
    assert client.post(reverse("stacks:stop", args=[stack.pk])).status_code == 302
    assert Stack.objects.get(pk=stack.pk).desired_state == "stopped"
    client.post(reverse("stacks:start", args=[stack.pk]))
    client.post(reverse("stacks:restart", args=[stack.pk]))
    assert Stack.objects.get(pk=stack.pk).operation == "restart"
    assert browser(viewer).post(reverse("stacks:stop", args=[stack.pk])).status_code == 403
    web = stack.services.get(name="web")
    client.post(reverse("stacks:scale", args=[web.pk]), {"replicas": 3})
    assert stack.services.get(name="web").scale == 3
    response = client.post(reverse("stacks:scale", args=[web.pk]), {"replicas": 99}, follow=True)
    assert "Replicas" in response.content.decode()
    assert client.get(reverse("stacks:remove", args=[stack.pk])).status_code == 403
    admin = browser(owner)
    assert admin.get(reverse("stacks:remove", args=[stack.pk])).status_code == 200
    admin.post(reverse("stacks:remove", args=[stack.pk]), {"volumes": "on"})
    removed = Stack.objects.get(pk=stack.pk)
    assert (removed.desired_state, removed.remove_volumes) == ("removed", True)


def test_revisions_page_diff_and_rollback(member, stack):
    first = stack.current_revision
    services.redeploy(member, stack, {"TAG": "2.0"})
    client = browser(member)
    body = client.get(reverse("stacks:revisions", args=[stack.pk])).content.decode()
    assert "r2" in body and "web: image berth-demo/web:1.0 → berth-demo/web:2.0" in body
    assert "<ins>" in body and "<del>" in body
    client.post(reverse("stacks:rollback", args=[first.pk]))
    stack.refresh_from_db()
    assert stack.current_revision.reason == "rollback to r1"


def test_foreign_pages_are_404(outsider, tenant_b, stack):
    client = browser(outsider)
    for name in ("detail", "status", "revisions", "upgrade", "remove"):
        assert client.get(reverse(f"stacks:{name}", args=[stack.pk])).status_code == 404, name
    assert client.post(reverse("stacks:stop", args=[stack.pk])).status_code == 404
    assert Stack.objects.get(pk=stack.pk).desired_state == "running"


def test_upgrade_page_asks_only_new_questions(member, env_a, template):
    needs_catalog_answers()
    _, v1, v2 = template
    stack = services.create_stack(member, env_a, "site", template_version=v1, answers={})
    client = browser(member)
    url = reverse("stacks:upgrade", args=[stack.pk])
    body = client.get(url).content.decode()
    assert 'name="COLOR"' in body and 'name="HEADLINE"' not in body and 'name="TAG"' not in body
    response = client.post(url, {"version": "2.0.0"})
    assert response.status_code == 200 and "COLOR" in response.content.decode()
    preview = client.post(url, {"version": "2.0.0", "COLOR": "green"})  # previews first
    assert preview.status_code == 200 and preview.context["preview"]["changed"]
    fingerprint = preview.context["preview"]["fingerprint"]
    response = client.post(
        url, {"version": "2.0.0", "COLOR": "green", "action": "apply", "fingerprint": fingerprint}
    )
    assert response.status_code == 302
    stack.refresh_from_db()
    assert stack.template_version == v2 and stack.answers["COLOR"] == "green"


def test_upgrade_page_for_a_compose_stack(member, stack):
    response = browser(member).get(reverse("stacks:upgrade", args=[stack.pk]))
    assert response.status_code == 200
    assert "nothing to upgrade" in response.content.decode()
