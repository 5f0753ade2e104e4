"""BERTH_LDAP_* parsing: plain data, no directory needed."""

from __future__ import annotations

import json

import ldap
import pytest
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.config import GroupOfNamesType, PosixGroupType

from apps.accounts.ldap import desired_roles
from apps.accounts.ldap_settings import ldap_settings_from_env, normalize_dn, parse_role_map

pytestmark = pytest.mark.usefixtures("fresh_cache")

BASE = {
    "BERTH_LDAP_URI": "ldap://ldap.example.test:389",
    "BERTH_LDAP_USER_SEARCH_BASE": "ou=people,dc=berth,dc=test",
}
DEVS = "cn=acme-devs,ou=groups,dc=berth,dc=test"
OPS = "cn=acme-ops,ou=groups,dc=berth,dc=test"


def env(**extra: str) -> dict[str, str]:
    return {**BASE, **extra}


def test_defaults_without_groups():
    settings = ldap_settings_from_env(BASE)

    assert settings["AUTH_LDAP_SERVER_URI"] == "ldap://ldap.example.test:389"
    assert settings["AUTH_LDAP_USER_SEARCH"].filterstr == "(uid=%(user)s)"
    assert settings["AUTH_LDAP_USER_SEARCH"].base_dn == BASE["BERTH_LDAP_USER_SEARCH_BASE"]
    assert settings["AUTH_LDAP_USER_ATTR_MAP"] == {
        "email": "mail",
        "first_name": "givenName",
        "last_name": "sn",
    }
    assert settings["AUTH_LDAP_START_TLS"] is False
    assert settings["AUTH_LDAP_ROLE_MAP"] == {}
    assert "AUTH_LDAP_GROUP_SEARCH" not in settings
    assert settings["AUTH_LDAP_CONNECTION_OPTIONS"][ldap.OPT_NETWORK_TIMEOUT] == 10


def test_full_configuration():
    settings = ldap_settings_from_env(
        env(
            BERTH_LDAP_BIND_DN="cn=reader,dc=berth,dc=test",
            BERTH_LDAP_BIND_PASSWORD="s3cret",
            BERTH_LDAP_USER_FILTER="(&(objectClass=person)(uid=%(user)s))",
            BERTH_LDAP_GROUP_SEARCH_BASE="ou=groups,dc=berth,dc=test",
            BERTH_LDAP_GROUP_TYPE="posixGroup",
            BERTH_LDAP_START_TLS="true",
            BERTH_LDAP_STAFF_GROUP="cn=staff,ou=groups,dc=berth,dc=test",
            BERTH_LDAP_SUPERUSER_GROUP="cn=root,ou=groups,dc=berth,dc=test",
            BERTH_LDAP_ROLE_MAP=json.dumps({DEVS: "acme:member", OPS: ["acme:admin", "b:viewer"]}),
            BERTH_LDAP_CA_CERT_FILE="/etc/ssl/ldap-ca.pem",
        )
    )

    assert settings["AUTH_LDAP_BIND_DN"] == "cn=reader,dc=berth,dc=test"
    assert settings["AUTH_LDAP_BIND_PASSWORD"] == "s3cret"
    assert settings["AUTH_LDAP_START_TLS"] is True
    assert isinstance(settings["AUTH_LDAP_GROUP_TYPE"], PosixGroupType)
    assert settings["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=posixGroup)"
    assert settings["AUTH_LDAP_USER_FLAGS_BY_GROUP"] == {
        "is_staff": [
            "cn=staff,ou=groups,dc=berth,dc=test",
            "cn=root,ou=groups,dc=berth,dc=test",
        ],
        "is_superuser": ["cn=root,ou=groups,dc=berth,dc=test"],
    }
    assert settings["AUTH_LDAP_ROLE_MAP"] == {
        DEVS: (("acme", "member"),),
        OPS: (("acme", "admin"), ("b", "viewer")),
    }
    options = settings["AUTH_LDAP_CONNECTION_OPTIONS"]
    assert options[ldap.OPT_X_TLS_CACERTFILE] == "/etc/ssl/ldap-ca.pem"
    assert list(options)[-1] == ldap.OPT_X_TLS_NEWCTX


def test_group_of_names_is_the_default_group_type():
    settings = ldap_settings_from_env(env(BERTH_LDAP_GROUP_SEARCH_BASE="ou=groups,dc=x"))

    assert isinstance(settings["AUTH_LDAP_GROUP_TYPE"], GroupOfNamesType)
    assert settings["AUTH_LDAP_USER_FLAGS_BY_GROUP"] == {}


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"BERTH_LDAP_URI": "http://ldap.example.test"}, "BERTH_LDAP_URI"),
        ({"BERTH_LDAP_USER_SEARCH_BASE": ""}, "BERTH_LDAP_USER_SEARCH_BASE"),
        ({"BERTH_LDAP_USER_SEARCH_BASE": "not a dn"}, "BERTH_LDAP_USER_SEARCH_BASE"),
        ({"BERTH_LDAP_BIND_DN": "admin"}, "BERTH_LDAP_BIND_DN"),
        ({"BERTH_LDAP_USER_FILTER": "(uid=%(login)s)"}, "BERTH_LDAP_USER_FILTER"),
        ({"BERTH_LDAP_USER_FILTER": "uid=%(user)s"}, "BERTH_LDAP_USER_FILTER"),
        ({"BERTH_LDAP_START_TLS": "maybe"}, "BERTH_LDAP_START_TLS"),
        ({"BERTH_LDAP_TIMEOUT": "soon"}, "BERTH_LDAP_TIMEOUT"),
        (
            {
                "BERTH_LDAP_GROUP_SEARCH_BASE": "ou=g,dc=x",
                "BERTH_LDAP_GROUP_TYPE": "activeDirectory",
            },
            "BERTH_LDAP_GROUP_TYPE",
        ),
        ({"BERTH_LDAP_ROLE_MAP": json.dumps({DEVS: "acme:member"})}, "BERTH_LDAP_ROLE_MAP"),
        ({"BERTH_LDAP_STAFF_GROUP": "cn=staff,dc=x"}, "BERTH_LDAP_STAFF_GROUP"),
    ],
)
def test_bad_values_name_the_variable(variables, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        ldap_settings_from_env(env(**variables))


@pytest.mark.parametrize(
    "raw",
    [
        "cn=acme-devs,ou=groups=acme:member",
        "[]",
        json.dumps({DEVS: "acme"}),
        json.dumps({DEVS: "acme:superhero"}),
        json.dumps({DEVS: ":member"}),
        json.dumps({DEVS: []}),
        json.dumps({"not a dn": "acme:member"}),
        json.dumps({DEVS: 5}),
    ],
)
def test_bad_role_maps_are_refused(raw):
    with pytest.raises(ImproperlyConfigured, match="BERTH_LDAP_ROLE_MAP"):
        parse_role_map(raw)


def test_role_map_keys_match_whatever_the_spelling():
    role_map = parse_role_map(
        json.dumps({"CN=Acme-Devs, OU=Groups,DC=berth,DC=test": "acme:admin"})
    )

    assert list(role_map) == [DEVS]
    assert normalize_dn("CN=Acme-Devs, OU=Groups,DC=berth,DC=test") == DEVS


def test_highest_role_wins_and_unmapped_groups_are_ignored():
    role_map = parse_role_map(
        json.dumps({DEVS: ["acme:member", "globex:viewer"], OPS: "acme:admin"})
    )

    wanted = desired_roles({DEVS, OPS, "cn=other,dc=x"}, role_map)

    assert wanted == {"acme": "admin", "globex": "viewer"}
    assert desired_roles(set(), role_map) == {}
