"""Changing a running stack against the real engine: a preview (page or API dry run)
leaves the containers and the database as they were; Apply changes the answer or the
compose file and the reconciler runs the new containers."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.activity.models import Event
from apps.catalog.models import Template
from apps.deployments import reconciler, services
from apps.deployments.models import Revision
from tests.conftest import login
from tests.deployments.stack_fixtures import make_version
from tests.deployments.test_api import client_for
from tests.fixtures.engine import engine_containers

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    environment: {{GREETING: "{greeting}"}}
    stop_grace_period: 1s
"""
TEMPLATE = """
services:
  app:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    environment: {GREETING: "${GREETING}", APP_PASSWORD: "${APP_PASSWORD}"}
    stop_grace_period: 1s
"""
QUESTIONS = [
    {"variable": "IMAGE", "label": "Image", "type": "string", "required": True},
    {"variable": "GREETING", "label": "Greeting", "type": "string", "default": "hello"},
    {"variable": "APP_PASSWORD", "label": "App password", "type": "password"},
]


def env_of(stack) -> dict:
    (container,) = engine_containers(stack)
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


def snapshot(stack) -> tuple:
    stack.refresh_from_db()
    ids = sorted(c["Id"] for c in engine_containers(stack))
    events = Event.objects.filter(object_type="stack", object_id=str(stack.pk)).count()
    return (ids, Revision.objects.filter(stack=stack).count(), events, stack.answers, stack.compose)


def test_compose_stack_preview_writes_nothing_then_apply(environment, image, host, owner):
    environment.hosts.add(host)
    stack = services.create_stack(
        owner, environment, "edit", compose=COMPOSE.format(image=image, greeting="hello")
    )
    reconciler.reconcile_stack(stack.pk)
    assert env_of(stack)["GREETING"] == "hello"
    before = snapshot(stack)
    edited = COMPOSE.format(image=image, greeting="bonjour")

    client = login(Client(), owner)
    url = reverse("stacks:edit", args=[stack.pk])
    page = client.post(url, {"compose": edited, "action": "preview"})
    assert page.status_code == 200 and "app: settings changed" in page.content.decode()
    dry = client_for(owner).post(
        f"/api/v1/stacks/{stack.pk}/redeploy/", {"compose": edited, "dry_run": True}, format="json"
    )
    assert dry.status_code == 200 and dry.json()["changed"] is True
    reconciler.reconcile_stack(stack.pk)
    assert snapshot(stack) == before, "a preview changed something"

    fingerprint = page.context["preview"]["fingerprint"]
    done = client.post(url, {"compose": edited, "action": "apply", "fingerprint": fingerprint})
    assert done.status_code == 302
    reconciler.reconcile_stack(stack.pk)
    stack.refresh_from_db()
    assert stack.current_revision.number == 2 and stack.compose == edited
    assert env_of(stack)["GREETING"] == "bonjour"


def test_template_stack_answer_change_reaches_the_container(environment, image, host, owner):
    environment.hosts.add(host)
    template = Template.objects.create(
        slug=f"edit-{environment.tenant.slug}",
        name="Edit me",
        category="web",
        visibility=Template.Visibility.TENANT,
        publisher=environment.tenant,
        approval=Template.Approval.APPROVED,
    )
    version = make_version(template, "1.0.0", TEMPLATE, QUESTIONS)
    stack = services.create_stack(
        owner, environment, "tpl", template_version=version, answers={"IMAGE": image}
    )
    reconciler.reconcile_stack(stack.pk)
    password = env_of(stack)["APP_PASSWORD"]
    assert len(password) == 32  # generated
    before = snapshot(stack)

    preview = services.preview_redeploy(owner, stack, answers={"GREETING": "salut"})
    assert "variable GREETING changed (hello → salut)" in preview["lines"]
    reconciler.reconcile_stack(stack.pk)
    assert snapshot(stack) == before

    services.redeploy(owner, stack, answers={"GREETING": "salut", "APP_PASSWORD": ""})
    reconciler.reconcile_stack(stack.pk)
    env = env_of(stack)
    assert env["GREETING"] == "salut"
    assert env["APP_PASSWORD"] == password  # a blank secret keeps the stored one
