"""What `${VAR}` means when a template version is rendered for a stack: answers hidden by
show_if are unset (their stored value is kept), and Berth's own BERTH_* variables are set."""

from __future__ import annotations

import pytest

from apps.catalog.models import Template
from apps.deployments import revisions, services
from tests.deployments.stack_fixtures import make_version

pytestmark = pytest.mark.django_db

COMPOSE = """
services:
  web:
    image: berth-demo/web:1.0
    environment:
      DEBUG: "${DEBUG}"
      LEVEL: "${LEVEL:-info}"
      STACK: "${BERTH_STACK_NAME}"
      WHERE: "${BERTH_TENANT}/${BERTH_ENVIRONMENT}"
"""
QUESTIONS = [
    {"variable": "DEBUG", "label": "Debug", "type": "bool", "default": False},
    {
        "variable": "LEVEL",
        "label": "Level",
        "type": "enum",
        "options": ["info", "debug", "trace"],
        "default": "info",
        "show_if": {"DEBUG": True},
    },
]


@pytest.fixture
def version(db):
    template = Template.objects.create(
        slug="levels",
        name="Levels",
        category="demo",
        visibility=Template.Visibility.PUBLIC,
        approval=Template.Approval.APPROVED,
    )
    return make_version(template, "1.0.0", COMPOSE, QUESTIONS)


def environment_of(stack) -> dict:
    return revisions.services_of(stack.current_revision.spec)["web"]["environment"]


def test_hidden_answers_are_not_interpolated_but_kept(member, tenant_a, version):
    env = tenant_a.environments.get(slug="dev")
    stack = services.create_stack(
        member, env, "logs", template_version=version, answers={"DEBUG": True, "LEVEL": "trace"}
    )
    assert environment_of(stack) == {
        "DEBUG": "true",
        "LEVEL": "trace",
        "STACK": "logs",
        "WHERE": "acme/dev",
    }
    # DEBUG off hides LEVEL: its stored answer stays, but ${LEVEL:-info} is the default.
    stack = services.redeploy(member, stack, {"DEBUG": False})
    assert stack.answers["LEVEL"] == "trace"
    assert environment_of(stack)["LEVEL"] == "info"
    # Shown again, the kept answer is used again.
    stack = services.redeploy(member, stack, {"DEBUG": True})
    assert environment_of(stack)["LEVEL"] == "trace"
