"""createtenant: tenant + default environments, the owner created if missing."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.activity.models import Event
from apps.tenants.models import Membership, Tenant
from tests.fixtures.commands import accounts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_admin_env")]
User = get_user_model()


def test_creates_the_user_and_prints_the_password_once(run_command):
    result = run_command(
        "createtenant",
        "acme",
        "--owner",
        "alice",
        "--name",
        "Acme Rockets",
        "--email",
        "alice@example.test",
    )
    password = re.search(r"Password: (\S+)\n", result.out).group(1)
    assert result.out.count(password) == 1
    alice = User.objects.get(username="alice")
    assert alice.email == "alice@example.test" and alice.check_password(password)
    assert alice.emailaddress_set.get().verified
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Rockets"
    assert Membership.objects.get(tenant=tenant, user=alice).role == "owner"
    assert "with environments dev, staging, prod" in result.out
    assert Event.objects.filter(action="tenant.create", tenant=tenant).exists()


def test_an_existing_owner_gets_no_new_password(run_command, owner):
    result = run_command("createtenant", "initech", "--owner", owner.username)
    assert "Password" not in result.out
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.name == "initech"
    assert tenant.memberships.get().user == owner
    assert accounts().count() == 1


def test_default_email_for_a_new_user(run_command):
    run_command("createtenant", "acme", "--owner", "bob")
    assert User.objects.get(username="bob").email == "bob@localhost"


def test_duplicate_slug_is_refused_and_leaves_no_user(run_command, owner):
    run_command("createtenant", "acme", "--owner", owner.username)
    with pytest.raises(CommandError, match="SLUG: .*already exists"):
        run_command("createtenant", "acme", "--owner", "newcomer")
    assert not User.objects.filter(username="newcomer").exists()


@pytest.mark.parametrize("slug", ["Bad_Slug", "x-", "a" * 41, "with space"])
def test_bad_slug_names_the_argument(run_command, owner, slug):
    with pytest.raises(CommandError, match=r"^SLUG: .*lowercase letters"):
        run_command("createtenant", slug, "--owner", owner.username)
    assert not Tenant.objects.exists()


def test_bad_user_name_and_email_are_refused(run_command):
    with pytest.raises(CommandError, match="--owner: Enter a valid username"):
        run_command("createtenant", "acme", "--owner", "bad name!")
    with pytest.raises(CommandError, match="--email: Enter a valid email"):
        run_command("createtenant", "acme", "--owner", "carol", "--email", "nope")
    assert not accounts().exists() and not Tenant.objects.exists()


def test_an_address_taken_by_another_user_is_refused(run_command, owner):
    with pytest.raises(CommandError, match="--email: Another user already has this address."):
        run_command("createtenant", "acme", "--owner", "dave", "--email", owner.email.upper())


def test_owner_is_required(run_command):
    with pytest.raises(CommandError, match="--owner"):
        run_command("createtenant", "acme")


def test_deactivated_owner_is_refused(run_command, owner):
    owner.is_active = False
    owner.save()
    with pytest.raises(CommandError, match="deactivated"):
        run_command("createtenant", "acme", "--owner", owner.username)


def test_guardians_anonymous_user_cannot_own_a_tenant(run_command):
    with pytest.raises(CommandError, match="reserved for anonymous visitors"):
        run_command("createtenant", "acme", "--owner", "AnonymousUser")
