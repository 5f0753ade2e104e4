"""The stack service layer: roles, validation, revisions, summaries and operations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.activity.models import Event
from apps.catalog.answers import new_questions
from apps.catalog.versions import upgrade_targets
from apps.deployments import exceptions, services
from apps.deployments.models import Revision, Service, Stack
from tests.deployments.stack_fixtures import COMPOSE, needs_catalog_answers

pytestmark = pytest.mark.django_db


def fields_of(exc: pytest.ExceptionInfo) -> set[str]:
    return set(exc.value.message_dict)


def replicas(revision: Revision, service: str) -> int | None:
    return revision.spec["project"]["services"][service]["deploy"]["replicas"]


# --- create -----------------------------------------------------------------------------------


def test_create_from_compose_writes_stack_revision_services_event_and_queues(
    member, env_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        stack = services.create_stack(member, env_a, "shop", compose=COMPOSE)
    callbacks = [c for c in callbacks if "broadcast" not in c.__qualname__]  # live updates
    assert len(callbacks) == 1  # reconcile_stack queued after commit
    assert stack.tenant == env_a.tenant
    assert stack.state == Stack.State.DEPLOYING and stack.operation == "deploy"
    assert stack.operation_deadline > timezone.now()
    revision = stack.current_revision
    assert revision.number == 1 and revision.reason == "deploy"
    assert revision.summary == "First deploy: 2 services (web, worker)"
    ports = revision.spec["project"]["services"]["web"]["ports"]
    assert ports[0]["host_ip"] == "127.0.0.1"
    assert sorted(stack.services.values_list("name", "scale")) == [("web", 1), ("worker", 1)]
    assert Event.objects.filter(action="stack.create", tenant=env_a.tenant).exists()


def test_viewer_and_outsider_cannot_deploy(viewer, outsider, env_a):
    for person in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            services.create_stack(person, env_a, "shop", compose=COMPOSE)
    assert not Stack.objects.exists()


@pytest.mark.parametrize("name", ["", "Shop", "-x", "a" * 64, "shop_1"])
def test_bad_name_is_a_name_error(member, env_a, name):
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, name, compose=COMPOSE)
    assert "name" in fields_of(exc)


def test_name_is_unique_per_environment(member, env_a, stack, tenant_a):
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "shop", compose=COMPOSE)
    assert fields_of(exc) == {"name"}
    other_env = tenant_a.environments.get(slug="prod")
    assert services.create_stack(member, other_env, "shop", compose=COMPOSE).pk


def test_exactly_one_source(member, env_a, template):
    with pytest.raises(ValidationError):
        services.create_stack(member, env_a, "shop")
    with pytest.raises(ValidationError):
        services.create_stack(member, env_a, "shop", template_version=template[1], compose=COMPOSE)


@pytest.mark.parametrize(
    "text, word",
    [
        ("services: {web: {image: x, privileged: true}}", "privileged"),
        ("services: {web: {image: x, volumes: ['/var/run/docker.sock:/s']}}", "docker.sock"),
        ("services: {web: {image: x, ports: ['0.0.0.0:80:80']}}", "0.0.0.0"),
        ("services: {web: {image: x, frobnicate: 1}}", "frobnicate"),
        ("services: [", ""),
    ],
)
def test_bad_compose_is_a_compose_error(member, env_a, text, word):
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "shop", compose=text)
    assert fields_of(exc) == {"compose"}
    assert word in " ".join(exc.value.message_dict["compose"])
    assert not Stack.objects.exists()


def test_policy_exceptions_of_the_environment_and_admins(member, superuser, env_a):
    text = "services: {web: {image: x, privileged: true}}"
    env_a.policy_exceptions = ["privileged"]
    env_a.save()
    assert services.create_stack(member, env_a, "allowed", compose=text).pk
    env_a.policy_exceptions = []
    env_a.save()
    with pytest.raises(ValidationError):
        services.create_stack(member, env_a, "refused", compose=text)
    with exceptions.confirmed():  # only the admin role grants it: confirmed on purpose
        assert services.create_stack(superuser, env_a, "admin", compose=text).pk


def test_private_template_of_another_tenant_is_refused(member, env_a, template, tenant_b):
    tpl, v1, _ = template
    tpl.publisher = tenant_b
    tpl.visibility = tpl.Visibility.TENANT
    tpl.save()
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "shop", template_version=v1, answers={})
    assert "template" in fields_of(exc)


# --- revisions: redeploy, scale, rollback ----------------------------------------------------


def test_redeploy_with_changed_answers_makes_a_new_revision(member, stack):
    services.redeploy(member, stack, {"TAG": "2.0", "GREETING": "hey"})
    stack.refresh_from_db()
    revision = stack.current_revision
    assert revision.number == 2 and revision.reason == "redeploy"
    assert revision.spec["project"]["services"]["web"]["image"] == "berth-demo/web:2.0"
    assert "web: image berth-demo/web:1.0 → berth-demo/web:2.0" in revision.summary
    assert "variable TAG added" in revision.summary
    assert stack.services.get(name="web").image == "berth-demo/web:2.0"


def test_a_change_to_a_flapping_service_starts_its_count_again(member, stack):
    """A redeploy is the fix being tried: judged on its own containers, not on the
    replacements of the broken ones (scale alone changes nothing of the containers)."""
    stack.services.filter(name="web").update(
        replacements=["2026-01-01T00:00:00+00:00"] * 3, flapping=True
    )
    services.scale(member, stack.services.get(name="web"), 2)
    web = stack.services.get(name="web")
    assert web.flapping and len(web.replacements) == 3
    services.redeploy(member, stack, {"TAG": "2.0"})
    web = stack.services.get(name="web")
    assert not web.flapping and web.replacements == []


def test_scale_makes_a_revision_and_is_checked(member, viewer, stack):
    web = stack.services.get(name="web")
    for bad in (-1, 51, "many", None):
        with pytest.raises(ValidationError) as exc:
            services.scale(member, web, bad)
        assert fields_of(exc) == {"replicas"}
    with pytest.raises(PermissionDenied):
        services.scale(viewer, web, 2)
    web = services.scale(member, web, 3)
    assert web.scale == 3
    stack.refresh_from_db()
    assert stack.current_revision.number == 2
    assert replicas(stack.current_revision, "web") == 3
    assert stack.current_revision.summary == "web: scale 1 → 3"
    assert stack.operation == "scale"
    services.scale(member, web, 0)
    assert Service.objects.get(pk=web.pk).scale == 0


def test_user_scale_is_kept_on_redeploy(member, stack):
    services.scale(member, stack.services.get(name="web"), 4)
    services.redeploy(member, stack, {"GREETING": "again"})
    stack.refresh_from_db()
    assert replicas(stack.current_revision, "web") == 4
    assert stack.current_revision.number == 3


def test_rollback_copies_an_old_spec(member, stack):
    first = stack.current_revision
    services.redeploy(member, stack, {"TAG": "2.0"})
    stack.refresh_from_db()
    services.rollback(member, stack, first)
    stack.refresh_from_db()
    revision = stack.current_revision
    assert revision.number == 3
    assert revision.reason == "rollback to r1"
    assert revision.spec == first.spec
    assert revision.summary.startswith("Rollback to r1: ")
    assert stack.answers == first.answers
    with pytest.raises(ValidationError):
        services.rollback(member, stack, revision)  # already current


def test_rollback_refuses_another_stacks_revision(member, stack, env_a):
    other = services.create_stack(member, env_a, "other", compose=COMPOSE)
    with pytest.raises(ValidationError) as exc:
        services.rollback(member, stack, other.current_revision)
    assert fields_of(exc) == {"revision"}


def test_revisions_are_numbered_per_stack(member, stack, env_a):
    other = services.create_stack(member, env_a, "other", compose=COMPOSE)
    services.redeploy(member, stack, {"TAG": "3"})
    services.redeploy(member, stack, {"TAG": "4"})
    assert list(stack.revisions.order_by("number").values_list("number", flat=True)) == [1, 2, 3]
    assert other.revisions.get().number == 1


# --- state changes ----------------------------------------------------------------------------


def test_stop_start_restart(member, viewer, stack, django_capture_on_commit_callbacks):
    with pytest.raises(PermissionDenied):
        services.stop(viewer, stack)
    with django_capture_on_commit_callbacks() as callbacks:
        stack = services.stop(member, stack)
    callbacks = [c for c in callbacks if "broadcast" not in c.__qualname__]  # live updates
    assert len(callbacks) == 1
    assert (stack.desired_state, stack.state, stack.operation) == ("stopped", "stopping", "stop")
    with pytest.raises(ValidationError):
        services.stop(member, stack)
    with pytest.raises(ValidationError):
        services.restart(member, stack)
    stack = services.start(member, stack)
    assert (stack.desired_state, stack.state) == ("running", "deploying")
    stack = services.restart(member, stack)
    assert stack.operation == "restart"
    assert stack.revisions.count() == 1  # no spec change, no revision
    actions = set(Event.objects.filter(object_id=str(stack.pk)).values_list("action", flat=True))
    assert {"stack.stop", "stack.start", "stack.restart"} <= actions


def test_remove_needs_admin_and_keeps_volumes_unless_asked(owner, member, stack):
    with pytest.raises(PermissionDenied):
        services.remove(member, stack)
    stack = services.remove(owner, stack)
    assert (stack.desired_state, stack.remove_volumes, stack.state) == (
        "removed",
        False,
        "removing",
    )
    with pytest.raises(ValidationError):
        services.redeploy(owner, stack, {})
    with pytest.raises(ValidationError):
        services.remove(owner, stack, volumes=True)


def test_remove_with_volumes(owner, stack):
    assert services.remove(owner, stack, volumes=True).remove_volumes is True


def test_cancel_and_expiry(member, stack):
    stack = services.cancel(member, stack)
    assert stack.cancel_requested
    assert services.expire_operation(stack) is False
    Stack.objects.filter(pk=stack.pk).update(operation_deadline=timezone.now() - timedelta(1))
    stack.refresh_from_db()
    assert services.expire_operation(stack) is True
    assert stack.state == "failed" and stack.operation == ""
    assert "did not finish" in stack.state_reason
    assert Event.objects.filter(action="stack.deploy", outcome="failure").exists()
    with pytest.raises(ValidationError):
        services.cancel(member, stack)  # nothing runs any more


# --- templates: create, redeploy, upgrade -----------------------------------------------------


def test_template_deploy_upgrade_keeps_passwords_and_scale(member, env_a, template):
    needs_catalog_answers()
    _, v1, v2 = template
    stack = services.create_stack(
        member, env_a, "site", template_version=v1, answers={"TITLE": "Mine"}
    )
    password = stack.answers["ADMIN_PASSWORD"]
    assert password  # generated
    assert upgrade_targets(stack.template_version) == [v2]
    services.scale(member, stack.services.get(name="web"), 2)
    stack.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        services.upgrade(member, stack, v2)
    assert "COLOR" in fields_of(exc)  # the new required question
    assert [q.variable for q in new_questions(v1, v2, stack.answers)] == ["COLOR"]
    services.upgrade(member, stack, v2, {"COLOR": "blue"})
    stack.refresh_from_db()
    assert stack.template_version == v2
    assert stack.answers["ADMIN_PASSWORD"] == password
    assert stack.answers["HEADLINE"] == "Mine"  # migrated from TITLE
    assert replicas(stack.current_revision, "web") == 2
    assert stack.current_revision.reason == "upgrade"
    assert password not in stack.current_revision.summary
    assert stack.current_revision.summary.startswith("Upgrade 1.0.0 → 2.0.0")


def test_upgrade_rules(member, env_a, template):
    needs_catalog_answers()
    tpl, v1, v2 = template
    stack = services.create_stack(
        member, env_a, "site", template_version=v2, answers={"COLOR": "x"}
    )
    with pytest.raises(ValidationError) as exc:
        services.upgrade(member, stack, v1)
    assert "not newer" in str(exc.value.message_dict["version"])
    compose_stack = services.create_stack(member, env_a, "raw", compose=COMPOSE)
    with pytest.raises(ValidationError) as exc:
        services.upgrade(member, compose_stack, v2)
    assert fields_of(exc) == {"version"}


def test_template_answers_are_validated_per_question(member, env_a, template):
    needs_catalog_answers()
    _, _, v2 = template
    with pytest.raises(ValidationError) as exc:
        services.create_stack(member, env_a, "site", template_version=v2, answers={})
    assert "COLOR" in fields_of(exc)


def test_the_queued_callback_sends_the_reconcile_task(
    member, env_a, django_capture_on_commit_callbacks
):
    from apps.deployments.tasks import reconcile_stack

    assert reconcile_stack.name == "deployments.reconcile_stack"
    with django_capture_on_commit_callbacks() as callbacks:
        services.create_stack(member, env_a, "queued", compose=COMPOSE)
    callbacks = [c for c in callbacks if "broadcast" not in c.__qualname__]  # live updates
    assert len(callbacks) == 1
    assert callbacks[0].__qualname__.startswith("enqueue_on_commit")


def test_rollback_and_scale_judge_the_spec_with_todays_policy(member, env_a):
    text = "services: {web: {image: x, privileged: true}}"
    env_a.policy_exceptions = ["privileged"]
    env_a.save()
    stack = services.create_stack(member, env_a, "priv", compose=text)
    first = stack.current_revision
    services.redeploy(member, stack, {"X": "1"})
    env_a.policy_exceptions = []
    env_a.save()
    stack.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        services.rollback(member, stack, first)
    assert "privileged" in str(exc.value.message_dict["compose"])
    with pytest.raises(ValidationError):
        services.scale(member, stack.services.get(name="web"), 2)
