"""Publishing rules: roles, private vs public, approval, immutability, save as template."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.activity.models import Event
from apps.catalog import services
from apps.catalog.models import Template, TemplateVersion
from apps.deployments.models import Stack
from tests.catalog.conftest import BERTH, COMPOSE

pytestmark = pytest.mark.django_db
META = {
    "slug": "shop",
    "name": "Shop",
    "category": "web",
    "description": "Our shop.",
    "maintainer": "Acme",
    "tags": ["shop"],
}


def publish(actor, tenant, version="1.0.0", **kwargs):
    return services.publish_template(
        actor,
        tenant,
        kwargs.pop("metadata", META),
        version,
        kwargs.pop("compose", COMPOSE),
        kwargs.pop("berth_yml", BERTH),
        "# Shop",
        **kwargs,
    )


def fields(exc) -> set[str]:
    return set(exc.value.message_dict)


def test_member_publishes_a_private_template(member, tenant_a, outsider, tenant_b):
    version = publish(member, tenant_a)
    template = version.template
    assert template.publisher == tenant_a and template.visibility == "tenant"
    assert template.approval == "none"
    assert [q["variable"] for q in version.questions] == ["GREETING", "PASSWORD"]
    assert Event.objects.filter(action="catalog.template.publish", tenant=tenant_a).exists()
    assert template in Template.objects.visible_to(member)
    assert template not in Template.objects.visible_to(outsider)
    assert version not in TemplateVersion.objects.visible_to(outsider)


def test_viewer_and_outsider_cannot_publish(viewer, outsider, tenant_a):
    for person in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            publish(person, tenant_a)
    assert not Template.objects.exists()


def test_public_needs_approval(member, owner, tenant_a, outsider, tenant_b, superuser):
    template = publish(member, tenant_a, visibility="public").template
    assert template.visibility == "public" and template.approval == "pending"
    assert template not in Template.objects.visible_to(outsider)
    with pytest.raises(PermissionDenied):
        services.approve_template(owner, template)
    services.approve_template(superuser, template)
    assert template in Template.objects.visible_to(outsider)
    assert Event.objects.filter(action="catalog.template.approved").exists()
    with pytest.raises(ValidationError):
        services.approve_template(superuser, template)  # not pending any more


def test_request_public_then_reject(owner, member, tenant_a, superuser, outsider, tenant_b):
    template = publish(member, tenant_a).template
    with pytest.raises(PermissionDenied):
        services.request_public(member, template)  # admins of the tenant ask
    services.request_public(owner, template)
    assert Template.objects.get(pk=template.pk).approval == "pending"
    services.reject_template(superuser, template, "no docs")
    template.refresh_from_db()
    assert template.approval == "rejected"
    assert template not in Template.objects.visible_to(outsider)


def test_versions_are_immutable(member, tenant_a):
    publish(member, tenant_a)
    with pytest.raises(ValidationError) as exc:
        publish(member, tenant_a, compose=COMPOSE.replace("1.0", "1.1"))
    assert fields(exc) == {"version"}
    assert "publish a new version instead" in exc.value.message_dict["version"][0]
    second = publish(member, tenant_a, version="1.1.0")
    assert second.template.versions.count() == 2


def test_bad_content_is_refused_with_fields(member, tenant_a):
    with pytest.raises(ValidationError) as exc:
        publish(member, tenant_a, compose="services: {web: {image: x, privileged: true}}")
    assert "compose" in fields(exc)
    with pytest.raises(ValidationError) as exc:
        publish(member, tenant_a, berth_yml="questions: 5")
    assert fields(exc) == {"berth"}
    with pytest.raises(ValidationError) as exc:
        publish(member, tenant_a, version="one")
    assert "version" in fields(exc)
    with pytest.raises(ValidationError) as exc:
        publish(member, tenant_a, metadata={**META, "category": "games", "slug": "Bad Slug"})
    assert fields(exc) == {"template"}
    assert not Template.objects.exists()


def test_add_version_to_existing_template(member, tenant_a, outsider, tenant_b):
    template = publish(member, tenant_a).template
    version = services.publish_version(member, template, "2.0.0", COMPOSE, BERTH)
    assert version.template == template
    with pytest.raises(PermissionDenied):
        services.publish_version(outsider, template, "3.0.0", COMPOSE, BERTH)


def test_save_running_stack_as_template(member, tenant_a):
    source = publish(member, tenant_a)
    environment = tenant_a.environments.get(slug="dev")
    stack = Stack.objects.create(
        tenant=tenant_a,
        environment=environment,
        name="shop",
        template_version=source,
        answers={"GREETING": "hello", "PASSWORD": "hunter22hunter22"},
        compose=COMPOSE.replace("${GREETING:-hi}", "${GREETING}"),
    )
    saved = services.save_as_template(member, stack, {**META, "slug": "shop-copy"}, "1.0.0")
    questions = {q["variable"]: q for q in saved.questions}
    assert questions["GREETING"]["default"] == "hello"
    assert questions["PASSWORD"]["default"] is None  # secrets never become defaults
    assert "hunter22" not in saved.compose + str(saved.config)
    assert saved.template.publisher == tenant_a
