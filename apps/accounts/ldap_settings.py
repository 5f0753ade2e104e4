"""Maps BERTH_LDAP_* environment variables to django-auth-ldap settings.

Filled in by the LDAP work; returns a dict of AUTH_LDAP_* settings.
"""

from collections.abc import Mapping


def ldap_settings_from_env(env: Mapping[str, str]) -> dict:
    return {"AUTH_LDAP_SERVER_URI": env["BERTH_LDAP_URI"]}
