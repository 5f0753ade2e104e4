"""The session's slapd and a settings switch that turns LDAP login on against it."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import override_settings

from apps.accounts.ldap_settings import ldap_settings_from_env
from tests.ldap.slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    GROUPS,
    PEOPLE,
    POSIX_GROUPS,
    SLAPD,
    Slapd,
    group_dn,
)

BACKEND = "apps.accounts.ldap.BerthLDAPBackend"
ROLE_MAP = {
    group_dn("acme-devs"): "acme:member",
    group_dn("acme-ops"): "acme:admin",
    group_dn("ghost-devs"): "ghost:admin",  # no such tenant: skipped with a warning
    group_dn("acme-viewers", POSIX_GROUPS): "acme:viewer",
}


@pytest.fixture(scope="session")
def slapd():
    """A real slapd on loopback for the whole session; its URI is `slapd.uri`."""
    if not SLAPD.exists():
        pytest.skip("slapd is not installed (apt-get install slapd ldap-utils)")
    server = Slapd().start()
    try:
        yield server
    finally:
        server.stop()


def ldap_env(slapd: Slapd, **extra: str) -> dict[str, str]:
    """The BERTH_LDAP_* variables an operator would set for this directory."""
    env = {
        "BERTH_LDAP_URI": slapd.uri,
        "BERTH_LDAP_BIND_DN": ADMIN_DN,
        "BERTH_LDAP_BIND_PASSWORD": ADMIN_PASSWORD,
        "BERTH_LDAP_USER_SEARCH_BASE": PEOPLE,
        "BERTH_LDAP_GROUP_SEARCH_BASE": GROUPS,
        "BERTH_LDAP_STAFF_GROUP": group_dn("platform-staff"),
        "BERTH_LDAP_ROLE_MAP": json.dumps(ROLE_MAP),
    }
    env.update(extra)
    return env


def ldap_settings(slapd: Slapd, **extra: str) -> override_settings:
    """override_settings that switch LDAP login on, as paas/settings.py does from the env."""
    from django.conf import settings

    backends = [BACKEND, *[b for b in settings.AUTHENTICATION_BACKENDS if b != BACKEND]]
    return override_settings(
        AUTHENTICATION_BACKENDS=backends, **ldap_settings_from_env(ldap_env(slapd, **extra))
    )


@pytest.fixture
def ldap_on(slapd):
    with ldap_settings(slapd):
        yield slapd


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth counts failed logins in the cache; each test starts from zero."""
    cache.clear()
    yield
    cache.clear()
