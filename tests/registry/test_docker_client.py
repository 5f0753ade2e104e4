"""The stock docker client against the real registry behind Berth's token service."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from apps.accounts.services import create_token
from apps.registry.models import Repository, RobotAccount
from apps.registry.services import create_robot, revoke_robot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def push_new(docker_cli, registry, tiny_image, repository: str) -> tuple[str, object]:
    ref = docker_cli.tag(tiny_image, registry.ref(repository))
    return ref, docker_cli.push(ref)


def assert_refused(result) -> None:
    """Refused at once, in the words docker users know: a refusal the daemon takes for a
    passing failure is retried five times over 50 s ("Retrying in 5 seconds")."""
    assert result.returncode != 0, result.stdout
    text = (result.stderr + result.stdout).lower()
    assert "denied" in text or "unauthorized" in text or "authentication required" in text, text
    assert "retrying" not in text, text


def test_password_login_push_and_pull_in_own_namespace(
    registry, docker_cli, tiny_image, tenant_a, member
):
    login = docker_cli.login(registry, member.username, PASSWORD)
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    ref, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('web')}")
    assert push.returncode == 0, push.stderr
    docker_cli.forget(ref)
    pull = docker_cli.pull(ref)
    assert pull.returncode == 0, pull.stderr
    assert docker_cli.logout(registry).returncode == 0


def test_wrong_password_is_refused(registry, docker_cli, tenant_a, member):
    login = docker_cli.login(registry, member.username, "not-the-password")
    assert login.returncode != 0
    assert "unauthorized" in login.stderr.lower() or "401" in login.stderr


def test_api_token_login_pushes_and_read_only_token_does_not(
    registry, docker_cli, tiny_image, tenant_a, member
):
    _, raw = create_token(actor=member, name="ci")
    assert docker_cli.login(registry, member.username, raw).returncode == 0
    _, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('api')}")
    assert push.returncode == 0, push.stderr

    _, read_only = create_token(actor=member, name="ro", read_only=True)
    assert docker_cli.login(registry, member.username, read_only).returncode == 0
    _, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('api')}")
    assert_refused(push)


def test_viewer_pulls_but_cannot_push(registry, docker_cli, tiny_image, tenant_a, member, viewer):
    docker_cli.login(registry, member.username, PASSWORD)
    ref, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('shared')}")
    assert push.returncode == 0, push.stderr
    docker_cli.forget(ref)
    assert docker_cli.login(registry, viewer.username, PASSWORD).returncode == 0
    assert docker_cli.pull(ref).returncode == 0
    _, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('viewer')}")
    assert_refused(push)


def test_robot_login_push_then_revoked_and_expired_refused(
    registry, docker_cli, tiny_image, tenant_a, owner
):
    robot, secret = create_robot(actor=owner, tenant=tenant_a, name="ci", scope="push")
    login = docker_cli.login(registry, "robot$acme+ci", secret)
    assert login.returncode == 0, login.stderr
    _, push = push_new(docker_cli, registry, tiny_image, f"acme/{unique('robot')}")
    assert push.returncode == 0, push.stderr
    robot.refresh_from_db()
    assert robot.last_used_at is not None

    revoke_robot(actor=owner, robot=robot)
    assert docker_cli.login(registry, "robot$acme+ci", secret).returncode != 0

    expiring, secret2 = create_robot(actor=owner, tenant=tenant_a, name="old", scope="push")
    RobotAccount.objects.filter(pk=expiring.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert docker_cli.login(registry, "robot$acme+old", secret2).returncode != 0


def test_pull_robot_limited_to_its_repositories(
    registry, docker_cli, tiny_image, tenant_a, owner, member
):
    allowed, other = unique("allowed"), unique("other")
    docker_cli.login(registry, member.username, PASSWORD)
    refs = {}
    for name in (allowed, other):
        refs[name], push = push_new(docker_cli, registry, tiny_image, f"acme/{name}")
        assert push.returncode == 0, push.stderr
        docker_cli.forget(refs[name])
    _, secret = create_robot(
        actor=owner, tenant=tenant_a, name="puller", scope="pull", repositories=[allowed]
    )
    assert docker_cli.login(registry, "robot$acme+puller", secret).returncode == 0
    assert docker_cli.pull(refs[allowed]).returncode == 0
    assert_refused(docker_cli.pull(refs[other]))
    _, push = push_new(docker_cli, registry, tiny_image, f"acme/{allowed}")
    assert_refused(push)


def test_no_push_into_another_tenants_namespace(
    registry, docker_cli, tiny_image, tenant_a, tenant_b, member
):
    docker_cli.login(registry, member.username, PASSWORD)
    _, push = push_new(docker_cli, registry, tiny_image, f"globex/{unique('intruder')}")
    assert_refused(push)
    _, push = push_new(docker_cli, registry, tiny_image, f"nosuchtenant/{unique('x')}")
    assert_refused(push)


def test_private_repository_of_another_tenant_refused_public_allowed(
    registry, docker_cli, tiny_image, tenant_a, tenant_b, member, outsider
):
    name = unique("app")
    docker_cli.login(registry, outsider.username, PASSWORD)
    ref, push = push_new(docker_cli, registry, tiny_image, f"globex/{name}")
    assert push.returncode == 0, push.stderr
    docker_cli.forget(ref)

    docker_cli.login(registry, member.username, PASSWORD)
    assert_refused(docker_cli.pull(ref))

    Repository.objects.update_or_create(
        tenant=tenant_b, name=name, defaults={"visibility": Repository.Visibility.PUBLIC}
    )
    pull = docker_cli.pull(ref)
    assert pull.returncode == 0, pull.stderr
    # Public means pull, never push.
    _, push = push_new(docker_cli, registry, tiny_image, f"globex/{name}")
    assert_refused(push)


def test_token_for_one_repository_not_accepted_for_another(
    registry, docker_cli, tiny_image, live_server, tenant_a, member
):
    first, second = unique("first"), unique("second")
    docker_cli.login(registry, member.username, PASSWORD)
    for name in (first, second):
        assert push_new(docker_cli, registry, tiny_image, f"acme/{name}")[1].returncode == 0

    answer = requests.get(
        f"{live_server.url}/registry/token/",
        params={"service": "berth-registry", "scope": f"repository:acme/{first}:pull"},
        auth=(member.username, PASSWORD),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    bearer = {"Authorization": f"Bearer {answer.json()['token']}"}
    own = requests.get(f"{registry.url}/v2/acme/{first}/tags/list", headers=bearer, timeout=10)
    assert own.status_code == 200 and own.json()["tags"] == ["1"]
    other = requests.get(f"{registry.url}/v2/acme/{second}/tags/list", headers=bearer, timeout=10)
    assert other.status_code == 401
    catalog = requests.get(f"{registry.url}/v2/_catalog", headers=bearer, timeout=10)
    assert catalog.status_code == 401
