"""berth_bootstrap: admin (password printed once), default tenant, site domain, local host."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core.management.base import CommandError
from django.test import Client

from apps.hosts.models import Host
from apps.tenants.models import Membership, Tenant
from tests.fixtures.commands import accounts
from tests.hosts.conftest import missing_socket

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_admin_env")]
User = get_user_model()


def printed_password(out: str) -> str:
    match = re.search(r"Password: (\S+)\n", out)
    assert match, out
    return match.group(1)


@pytest.mark.engine
def test_first_run_sets_everything_up_and_the_admin_can_sign_in(run_command, settings):
    result = run_command("berth_bootstrap")
    password = printed_password(result.out)
    assert result.out.count(password) == 1
    assert "Created superuser admin <admin@localhost>." in result.out

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)
    assert EmailAddress.objects.filter(user=admin, verified=True, primary=True).exists()

    tenant = Tenant.objects.get(slug="default")
    assert Membership.objects.get(tenant=tenant, user=admin).role == "owner"
    assert sorted(tenant.environments.values_list("slug", flat=True)) == ["dev", "prod", "staging"]
    assert Site.objects.get(pk=settings.SITE_ID).domain == "127.0.0.1:8000"

    host = Host.objects.get(endpoint=settings.BERTH_DOCKER_HOST)
    assert host.name == "local" and host.state == Host.State.ACTIVE
    assert f"Registered local at {settings.BERTH_DOCKER_HOST}: active" in result.out

    # Mandatory e-mail verification does not stop the bootstrapped admin.
    response = Client().post("/accounts/login/", {"login": "admin", "password": password})
    assert response.status_code == 302
    assert "confirm-email" not in response["Location"]
    assert "verif" not in response["Location"]


@pytest.mark.engine
def test_second_run_changes_nothing_and_prints_no_secret(run_command):
    first = run_command("berth_bootstrap")
    password = printed_password(first.out)
    counts = (User.objects.count(), Tenant.objects.count(), Host.objects.count())

    second = run_command("berth_bootstrap")
    assert "Password" not in second.out and password not in second.out
    assert "Superuser admin exists; left unchanged." in second.out
    assert (User.objects.count(), Tenant.objects.count(), Host.objects.count()) == counts
    assert User.objects.get(username="admin").check_password(password)


def test_credentials_from_the_environment(run_command, monkeypatch, settings, tmp_path):
    settings.BERTH_DOCKER_HOST = missing_socket(tmp_path)
    monkeypatch.setenv("BERTH_ADMIN_USERNAME", "root")
    monkeypatch.setenv("BERTH_ADMIN_EMAIL", "ops@example.test")
    monkeypatch.setenv("BERTH_ADMIN_PASSWORD", "a-long-env-password-1")
    monkeypatch.setenv("BERTH_SITE_DOMAIN", "berth.example.test")
    result = run_command("berth_bootstrap")
    assert "a-long-env-password-1" not in result.out
    assert "the one in BERTH_ADMIN_PASSWORD" in result.out
    admin = User.objects.get(username="root")
    assert admin.email == "ops@example.test" and admin.check_password("a-long-env-password-1")
    assert Site.objects.get(pk=settings.SITE_ID).domain == "berth.example.test"
    # An engine that does not answer is reported, not fatal.
    assert "unreachable" in result.out
    assert Host.objects.get(name="local").state == Host.State.UNREACHABLE


def test_an_existing_superuser_is_kept(run_command, superuser, settings, tmp_path):
    settings.BERTH_DOCKER_HOST = missing_socket(tmp_path)
    result = run_command("berth_bootstrap")
    assert "Password" not in result.out
    assert f"Superuser {superuser.username} exists" in result.out
    assert not User.objects.filter(username="admin").exists()
    assert Tenant.objects.get(slug="default").memberships.get().user == superuser


def test_a_plain_user_named_admin_is_not_promoted(run_command, make_user, settings, tmp_path):
    settings.BERTH_DOCKER_HOST = missing_socket(tmp_path)
    make_user("admin")
    with pytest.raises(CommandError, match="exists but is not a superuser"):
        run_command("berth_bootstrap")
    assert not User.objects.get(username="admin").is_superuser


def test_a_bad_admin_email_is_a_clear_error(run_command, monkeypatch):
    monkeypatch.setenv("BERTH_ADMIN_EMAIL", "not-an-address")
    with pytest.raises(CommandError, match="BERTH_ADMIN_USERNAME/EMAIL: Enter a valid email"):
        run_command("berth_bootstrap")
    assert not accounts().exists()
