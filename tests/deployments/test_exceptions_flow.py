"""Stacks with exceptions to the compose policy: recorded, confirmed, explained.

A platform admin confirms what only their role grants (form, API); the revision records
what it uses and the activity log says so; a tenant member who later meets the stack is
told why a change is refused, while stop/start/restart keep working.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from apps.activity.models import Event
from apps.deployments import exceptions, services
from apps.deployments.models import Stack
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from tests.conftest import login

pytestmark = pytest.mark.django_db

PRIVILEGED = """
services:
  web:
    image: x
    privileged: true
  logs:
    image: x
    volumes: ["/var/log:/host-logs:ro"]
"""
PLAIN = "services: {web: {image: x}, logs: {image: x}}"


def admin_stack(superuser, env, name="priv", text=PRIVILEGED) -> Stack:
    with exceptions.confirmed():
        return services.create_stack(superuser, env, name, compose=text)


def test_admin_deploy_needs_confirmation_listing_the_exceptions(superuser, env_a):
    with pytest.raises(ValidationError) as exc:
        services.create_stack(superuser, env_a, "priv", compose=PRIVILEGED)
    message = " ".join(exc.value.message_dict["confirm_exceptions"])
    assert "privileged mode (service web)" in message
    assert "bind mounts of host paths (/var/log) (service logs)" in message
    assert not Stack.objects.filter(name="priv").exists()

    stack = admin_stack(superuser, env_a)
    recorded = stack.current_revision.spec["berth"]["exceptions"]
    assert {(e["rule"], e["name"], e["granted_by"]) for e in recorded} == {
        ("privileged", "web", "platform admin"),
        ("bind_mounts", "logs", "platform admin"),
    }
    event = Event.objects.get(action="stack.create", object_id=str(stack.pk))
    assert "uses exceptions to the compose policy: privileged mode (service web)" in event.message
    assert "granted by a platform admin" in event.message
    assert event.data["exceptions"] == recorded


def test_environment_grants_need_no_confirmation_and_are_recorded(member, env_a):
    env_a.policy_exceptions = ["privileged", "bind_mounts"]
    env_a.save()
    stack = services.create_stack(member, env_a, "granted", compose=PRIVILEGED)
    recorded = stack.current_revision.spec["berth"]["exceptions"]
    assert {e["granted_by"] for e in recorded} == {"environment"}
    event = Event.objects.get(action="stack.create", object_id=str(stack.pk))
    assert "granted by the environment" in event.message


def test_a_stack_without_exceptions_records_none(member, env_a):
    stack = services.create_stack(member, env_a, "plain", compose=PLAIN)
    assert "exceptions" not in stack.current_revision.spec["berth"]
    event = Event.objects.get(action="stack.create", object_id=str(stack.pk))
    assert "exceptions" not in (event.data or {})


def test_admin_redeploy_keeping_the_exceptions_asks_nothing_new_ones_need_confirming(
    superuser, env_a
):
    stack = admin_stack(superuser, env_a)
    services.redeploy(superuser, stack, {"X": "1"})  # the same exceptions: no question
    more = PRIVILEGED.replace(
        "image: x\n    volumes", "image: x\n    cap_add: [NET_ADMIN]\n    volumes"
    )
    with pytest.raises(ValidationError) as exc:
        services.redeploy(superuser, Stack.objects.get(pk=stack.pk), compose=more)
    message = " ".join(exc.value.message_dict["confirm_exceptions"])
    assert "adding capabilities (NET_ADMIN) (service logs)" in message
    assert "privileged" not in message  # already there: not asked again
    with exceptions.confirmed():
        services.redeploy(superuser, Stack.objects.get(pk=stack.pk), compose=more)


def test_admin_rollback_that_brings_exceptions_back_needs_confirmation(superuser, env_a):
    stack = admin_stack(superuser, env_a)
    first = stack.current_revision
    services.redeploy(superuser, stack, compose=PLAIN)
    stack.refresh_from_db()
    assert "exceptions" not in stack.current_revision.spec["berth"]
    with pytest.raises(ValidationError) as exc:
        services.rollback(superuser, stack, first)
    assert "confirm_exceptions" in exc.value.message_dict
    with exceptions.confirmed():
        services.rollback(superuser, stack, first)


def test_member_is_told_why_scale_redeploy_and_rollback_are_refused(superuser, member, env_a):
    stack = admin_stack(superuser, env_a)
    first = stack.current_revision
    expected = (
        "This stack was deployed by a platform admin with exceptions to the compose policy "
        "(privileged mode on service web, bind mounts of host paths (/var/log) on service "
        "logs) that your environment does not grant; ask a platform admin to change it."
    )
    with pytest.raises(ValidationError) as exc:
        services.scale(member, stack.services.get(name="web"), 2)
    assert exc.value.messages == [expected]
    with pytest.raises(ValidationError) as exc:
        services.redeploy(member, stack, {"X": "1"})
    assert exc.value.messages == [expected]

    services.redeploy(superuser, stack, compose=PLAIN)
    stack.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        services.rollback(member, stack, first)
    assert exc.value.messages == [
        expected.replace("This stack was", "Revision r1 of this stack was")
    ]


def test_member_own_violation_still_gets_the_policy_error(superuser, member, env_a):
    stack = admin_stack(superuser, env_a)
    own = PRIVILEGED + "    sysctls: {net.core.somaxconn: '1024'}\n"
    with pytest.raises(ValidationError) as exc:
        services.redeploy(member, stack, compose=own)
    assert "rule: sysctls" in " ".join(exc.value.messages)


def test_member_stop_start_restart_keep_working(superuser, member, env_a):
    stack = admin_stack(superuser, env_a)
    services.restart(member, stack)
    services.stop(member, Stack.objects.get(pk=stack.pk))
    services.start(member, Stack.objects.get(pk=stack.pk))
    assert Stack.objects.get(pk=stack.pk).current_revision_id == stack.current_revision_id


def test_api_create_400_lists_the_exceptions_then_confirm_deploys(superuser, env_a, session_api):
    client = session_api(superuser)
    body = {"name": "apipriv", "environment": env_a.pk, "compose": PRIVILEGED}
    response = client.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400, response.content
    assert "privileged mode (service web)" in str(response.json()["confirm_exceptions"])
    response = client.post("/api/v1/stacks/", {**body, "confirm_exceptions": True}, format="json")
    assert response.status_code == 201, response.content
    assert not exceptions.is_confirmed()  # the request's confirmation ended with it
    marked = response.json()["policy_exceptions"]
    assert [(e["rule"], e["name"], e["granted_by"]) for e in marked] == [
        ("privileged", "web", "platform admin"),
        ("bind_mounts", "logs", "platform admin"),
    ]


def test_api_member_scale_gets_the_clear_message(superuser, member, env_a, session_api):
    stack = admin_stack(superuser, env_a)
    service = stack.services.get(name="web")
    response = session_api(member).post(
        f"/api/v1/services/{service.pk}/scale/", {"replicas": 2}, format="json"
    )
    assert response.status_code == 400
    assert "deployed by a platform admin with exceptions" in str(response.json())


def browser(user, env) -> Client:
    client = login(Client(), user)
    session = client.session
    session[SESSION_TENANT] = env.tenant_id
    session[SESSION_ENVIRONMENT] = env.pk
    session.save()
    return client


def test_compose_form_box_for_admins_only_and_the_stack_page_marks_the_stack(
    superuser, member, env_a
):
    url = reverse("stacks:create")
    assert "confirm_exceptions" not in browser(member, env_a).get(url).content.decode()
    admin = browser(superuser, env_a)
    # No box until a file needs it: then the refusal lists the exceptions on the box.
    assert 'type="checkbox" name="confirm_exceptions"' not in admin.get(url).content.decode()
    refused = admin.post(url, {"name": "priv", "compose": PRIVILEGED})
    body = refused.content.decode()
    assert refused.status_code == 200 and "privileged mode (service web)" in body
    assert 'type="checkbox" name="confirm_exceptions"' in body
    assert not Stack.objects.filter(name="priv").exists()
    done = admin.post(url, {"name": "priv", "compose": PRIVILEGED, "confirm_exceptions": "on"})
    stack = Stack.objects.get(name="priv")
    assert done.status_code == 302

    listing = browser(member, env_a).get(reverse("stacks:list")).content.decode()
    assert "Policy exceptions</span>" in listing
    page = browser(member, env_a).get(reverse("stacks:detail", args=[stack.pk]))
    body = page.content.decode()
    assert "Uses exceptions to the compose policy" in body
    assert "privileged mode (service web, granted by a platform admin)" in body
    assert "needs a platform admin" in body
    scaled = browser(member, env_a).post(
        reverse("stacks:scale", args=[stack.services.get(name="web").pk]),
        {"replicas": 2},
        follow=True,
    )
    assert "deployed by a platform admin with exceptions" in scaled.content.decode()


def test_catalog_deploy_form_asks_the_admin_to_confirm(superuser, member, env_a):
    from apps.catalog.models import Template
    from tests.deployments.stack_fixtures import make_version

    template = Template.objects.create(
        slug="logs-reader",
        name="Logs reader",
        category="web",
        visibility=Template.Visibility.PUBLIC,
        approval=Template.Approval.APPROVED,
    )
    questions = [{"variable": "LOGS", "label": "Host folder", "type": "string", "required": True}]
    compose = 'services:\n  web:\n    image: x\n    volumes: ["${LOGS}:/logs:ro"]\n'
    make_version(template, "1.0.0", compose, questions)
    url = f"/catalog/{template.pk}/"
    form = {"stack_name": "reader", "environment": env_a.pk, "LOGS": "/var/log"}
    assert "confirm_exceptions" not in browser(member, env_a).get(url).content.decode()
    admin = browser(superuser, env_a)
    refused = admin.post(url, form)
    body = refused.content.decode()
    assert refused.status_code == 200
    assert "bind mounts of host paths (/var/log) (service web)" in body
    assert 'type="checkbox" name="confirm_exceptions"' in body
    done = admin.post(url, {**form, "confirm_exceptions": "on"})
    assert done.status_code == 302, done.content.decode()[-1500:]
    stack = Stack.objects.get(name="reader")
    assert stack.current_revision.spec["berth"]["exceptions"][0]["rule"] == "bind_mounts"


def test_rollback_page_offers_the_admin_the_box(superuser, env_a):
    stack = admin_stack(superuser, env_a)
    first = stack.current_revision
    services.redeploy(superuser, stack, compose=PLAIN)
    admin = browser(superuser, env_a)
    page = admin.get(reverse("stacks:revisions", args=[stack.pk])).content.decode()
    assert 'name="confirm_exceptions"' in page  # on r1's form, which brings them back
    url = reverse("stacks:rollback", args=[first.pk])
    refused = admin.post(url, follow=True).content.decode()
    assert "privileged mode (service web)" in refused
    assert Stack.objects.get(pk=stack.pk).current_revision.number == 2
    admin.post(url, {"confirm_exceptions": "on"})
    assert Stack.objects.get(pk=stack.pk).current_revision.number == 3
