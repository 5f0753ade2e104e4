"""Directory logins now find their account by DN (DirectoryAccount), never by name alone.

Accounts the LDAP backend created before DirectoryAccount existed, whose owner has not
logged in since, carry no mark yet; they would be refused as "a local account with this
name". When LDAP login is configured, mark the accounts only the LDAP backend makes: no
usable password and no social login. They get a blank DN, found by name at their next
LDAP login, which records the DN. Nothing is marked when LDAP login is off.
"""

from django.conf import settings
from django.db import migrations

LDAP_BACKEND = "apps.accounts.ldap.BerthLDAPBackend"


def mark_passwordless_directory_users(apps, schema_editor):
    if LDAP_BACKEND not in settings.AUTHENTICATION_BACKENDS:
        return
    User = apps.get_model(settings.AUTH_USER_MODEL)
    DirectoryAccount = apps.get_model("accounts", "DirectoryAccount")
    SocialAccount = apps.get_model("socialaccount", "SocialAccount")
    social = SocialAccount.objects.values("user_id")
    marked = DirectoryAccount.objects.values("user_id")
    candidates = User.objects.filter(password__startswith="!").exclude(pk__in=social)
    # django-guardian's stand-in row for anonymous visitors is nobody's account.
    candidates = candidates.exclude(
        username=getattr(settings, "ANONYMOUS_USER_NAME", "AnonymousUser")
    )
    for user in candidates.exclude(pk__in=marked):
        DirectoryAccount.objects.create(user=user, dn="")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_apitoken_parent"),
        ("socialaccount", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(mark_passwordless_directory_users, migrations.RunPython.noop),
    ]
