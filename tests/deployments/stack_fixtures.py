"""Fixtures shared by the stack service, API and page tests (imported by name)."""

from __future__ import annotations

import hashlib

import pytest

from apps.catalog.models import Template, TemplateVersion
from apps.deployments import services

COMPOSE = """
services:
  web:
    image: "berth-demo/web:${TAG:-1.0}"
    environment: {GREETING: "${GREETING:-hello}"}
    ports: ["8080:80"]
  worker:
    image: berth-demo/worker:1.0
"""

TEMPLATE_V1 = """
services:
  web:
    image: "berth-demo/web:${TAG}"
    environment: {ADMIN_PASSWORD: "${ADMIN_PASSWORD}", TITLE: "${TITLE}"}
"""

TEMPLATE_V2 = """
services:
  web:
    image: "berth-demo/web:${TAG}"
    environment:
      ADMIN_PASSWORD: "${ADMIN_PASSWORD}"
      HEADLINE: "${HEADLINE}"
      COLOR: "${COLOR}"
"""


def make_version(template, version, compose, questions, config=None):
    return TemplateVersion.objects.create(
        template=template,
        version=version,
        compose=compose,
        questions=questions,
        config=config or {},
        content_hash=hashlib.sha256(compose.encode()).hexdigest(),
    )


QUESTIONS_V1 = [
    {"variable": "TAG", "label": "Tag", "type": "string", "default": "1.0", "required": True},
    {"variable": "TITLE", "label": "Title", "type": "string", "default": "Hi"},
    {"variable": "ADMIN_PASSWORD", "label": "Admin password", "type": "password"},
]
QUESTIONS_V2 = [
    {"variable": "TAG", "label": "Tag", "type": "string", "default": "2.0", "required": True},
    {"variable": "HEADLINE", "label": "Headline", "type": "string", "default": "Hi"},
    {"variable": "ADMIN_PASSWORD", "label": "Admin password", "type": "password"},
    {"variable": "COLOR", "label": "Color", "type": "string", "required": True},
]


@pytest.fixture
def env_a(tenant_a):
    return tenant_a.environments.get(slug="dev")


@pytest.fixture
def env_b(tenant_b):
    return tenant_b.environments.get(slug="dev")


@pytest.fixture
def template(db):
    template = Template.objects.create(
        slug="demo-web",
        name="Demo web",
        category="web",
        visibility=Template.Visibility.PUBLIC,
        approval=Template.Approval.APPROVED,
    )
    v1 = make_version(template, "1.0.0", TEMPLATE_V1, QUESTIONS_V1)
    v2 = make_version(
        template,
        "2.0.0",
        TEMPLATE_V2,
        QUESTIONS_V2,
        config={
            "upgrade_from": ">=1.0.0 <2.0.0",
            "migrations": [{"op": "rename", "variable": "TITLE", "to": "HEADLINE"}],
        },
    )
    return template, v1, v2


@pytest.fixture
def stack(owner, env_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        return services.create_stack(owner, env_a, "shop", compose=COMPOSE)


def needs_catalog_answers():
    return pytest.importorskip("apps.catalog.answers")
