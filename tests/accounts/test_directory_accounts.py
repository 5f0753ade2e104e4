"""The directory-managed marker without a directory: its rules hold even with LDAP off
(for example after the operator switched it off, until an admin removes the marker)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import authenticate
from django.core import mail
from django.urls import reverse

from apps.accounts.models import DirectoryAccount, is_directory_managed
from tests.conftest import PASSWORD, login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

NEW_PASSWORD = "tidal-basin-anchor-77"


@pytest.fixture
def directory_user(make_user):
    user = make_user("dora")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    DirectoryAccount.objects.create(user=user, dn="uid=dora,ou=people,dc=berth,dc=test")
    user.set_unusable_password()
    user.save()
    return user


def test_marker_is_what_makes_an_account_directory_managed(directory_user, make_user):
    assert is_directory_managed(directory_user)
    assert not is_directory_managed(make_user("lola"))


def test_saved_passwords_are_discarded_until_an_admin_removes_the_marker(directory_user):
    directory_user.set_password(NEW_PASSWORD)
    directory_user.save()
    assert authenticate(None, username="dora", password=NEW_PASSWORD) is None

    DirectoryAccount.objects.filter(user=directory_user).delete()
    directory_user.set_password(NEW_PASSWORD)
    directory_user.save()
    assert authenticate(None, username="dora", password=NEW_PASSWORD) == directory_user


def test_password_saves_of_other_fields_are_left_alone(make_user):
    user = make_user("lola")
    user.save(update_fields=["last_login"])
    assert authenticate(None, username="lola", password=PASSWORD) == user


def test_reset_mail_carries_no_link(directory_user, client):
    response = client.post(reverse("account_reset_password"), {"email": "dora@example.test"})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    assert len(mail.outbox) == 1
    assert "/password/reset/key/" not in mail.outbox[0].body
    assert "LDAP directory" in mail.outbox[0].body


def test_set_password_page_refuses(directory_user, client):
    login(client, directory_user)

    page = client.get(reverse("account_set_password"))
    response = client.post(
        reverse("account_set_password"), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert "managed by your organisation" in page.content.decode()
    assert response.status_code == 200
    assert response.context["form"].errors["password1"]
    directory_user.refresh_from_db()
    assert not directory_user.has_usable_password()


def test_upgrade_marks_users_with_ldap_memberships(tenant_a, member, viewer):
    """The data migration: a membership from LDAP groups proves a directory account."""
    from importlib import import_module

    from django.apps import apps

    from apps.tenants.models import Membership

    Membership.objects.filter(user=member).update(source="ldap")
    migration = import_module("apps.accounts.migrations.0002_directoryaccount")

    migration.mark_known_directory_users(apps, None)

    assert is_directory_managed(member) and not is_directory_managed(viewer)
    member.refresh_from_db()
    assert not member.has_usable_password()
    assert authenticate(None, username="vera", password=PASSWORD) == viewer


def test_admin_links_a_local_account_to_a_directory_entry(superuser, make_user, client):
    """The one way a local account becomes a directory one: an operator says so."""
    lola = make_user("lola")
    login(client, superuser)
    add = reverse("admin:accounts_directoryaccount_add")

    bad = client.post(add, {"user": lola.pk, "dn": "not a dn"})
    assert bad.status_code == 200 and "DN" in str(bad.context["adminform"].form.errors)
    assert not is_directory_managed(lola)

    response = client.post(add, {"user": lola.pk, "dn": "uid=lola,ou=people,dc=berth,dc=test"})

    assert response.status_code == 302
    assert DirectoryAccount.objects.get(user=lola).dn == "uid=lola,ou=people,dc=berth,dc=test"


def test_only_platform_admins_link_accounts(make_user, client):
    staff = make_user("stella", is_staff=True)
    login(client, staff)
    assert client.get(reverse("admin:accounts_directoryaccount_add")).status_code == 403
