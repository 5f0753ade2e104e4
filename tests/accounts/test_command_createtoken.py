"""createtoken: only the raw token on stdout, working against the API; clear errors."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.test import Client

from apps.accounts.models import ApiToken, find_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_admin_env")]


def test_prints_only_the_token_and_it_works(run_command, owner, tenant_a):
    result = run_command("createtoken", owner.username)
    raw = result.out.strip()
    assert result.out == raw + "\n" and raw.startswith("berth_")
    token = find_token(raw)
    assert token.user == owner and token.tenant is None and not token.read_only
    assert token.name == "cli" and token.expires_at is None
    assert raw not in result.err and token.prefix in result.err

    response = Client().get("/api/v1/tenants/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert "acme" in response.content.decode()


def test_scoped_read_only_expiring_token(run_command, owner, tenant_a):
    raw = run_command(
        "createtoken",
        owner.username,
        "--tenant",
        "acme",
        "--read-only",
        "--expires",
        "7",
        "--name",
        "deploy bot",
    ).out.strip()
    token = find_token(raw)
    assert (token.tenant, token.read_only, token.name) == (tenant_a, True, "deploy bot")
    assert token.expires_at is not None
    assert ApiToken.objects.filter(key_hash=token.key_hash).count() == 1


def test_unknown_user(run_command):
    with pytest.raises(CommandError, match="No user named ghost."):
        run_command("createtoken", "ghost")


def test_unknown_tenant(run_command, owner):
    with pytest.raises(CommandError, match="--tenant: no tenant with slug nowhere."):
        run_command("createtoken", owner.username, "--tenant", "nowhere")


def test_tenant_the_user_is_not_a_member_of(run_command, outsider, tenant_a):
    with pytest.raises(CommandError, match="not a member of this tenant"):
        run_command("createtoken", outsider.username, "--tenant", "acme")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("days", ["0", "-1", "100000"])
def test_bad_expiry(run_command, owner, days):
    with pytest.raises(CommandError, match=r"--expires: Choose between 1 and \d+ days."):
        run_command("createtoken", owner.username, "--expires", days)


def test_expiry_must_be_a_number(run_command, owner):
    with pytest.raises(CommandError, match="--expires: invalid int value"):
        run_command("createtoken", owner.username, "--expires", "soon")


def test_blank_name(run_command, owner):
    with pytest.raises(CommandError, match="--name: Give the token a name."):
        run_command("createtoken", owner.username, "--name", " ")


def test_deactivated_user(run_command, owner):
    owner.is_active = False
    owner.save()
    with pytest.raises(CommandError, match="deactivated"):
        run_command("createtoken", owner.username)


def test_guardians_anonymous_user_is_refused(run_command):
    with pytest.raises(CommandError, match="reserved for anonymous visitors"):
        run_command("createtoken", "AnonymousUser")
