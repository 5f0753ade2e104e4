"""Maps BERTH_LDAP_* environment variables to django-auth-ldap settings.

Kept free of models so that paas/settings.py can import it while settings load. Every
parsing error raises ImproperlyConfigured naming the variable, so a typo stops the
process at start-up instead of locking people out at their next login.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ldap
import ldap.dn
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.config import (
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    PosixGroupType,
)

from apps.core.roles import Role

DEFAULT_USER_FILTER = "(uid=%(user)s)"
GROUP_TYPES = {
    "groupofnames": (GroupOfNamesType, "(objectClass=groupOfNames)"),
    "groupofuniquenames": (GroupOfUniqueNamesType, "(objectClass=groupOfUniqueNames)"),
    "posixgroup": (PosixGroupType, "(objectClass=posixGroup)"),
}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"", "0", "false", "no", "off"}
URI_SCHEMES = ("ldap://", "ldaps://", "ldapi://")

RoleMap = dict[str, tuple[tuple[str, str], ...]]


def _fail(name: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}: {problem}")


def normalize_dn(dn: str) -> str:
    """A canonical, lower-case spelling of a DN, so map keys match search results."""
    rdns = ldap.dn.str2dn(dn.strip())
    lowered = [[(attr.lower(), value.lower(), flags) for attr, value, flags in rdn] for rdn in rdns]
    return ldap.dn.dn2str(lowered)


def _dn(env: Mapping[str, str], name: str, *, required: bool = False) -> str:
    value = env.get(name, "").strip()
    if not value:
        if required:
            raise _fail(name, "is required when BERTH_LDAP_URI is set.")
        return ""
    if not ldap.dn.is_dn(value):
        raise _fail(name, f"{value!r} is not a valid DN.")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise _fail(name, f"use true or false, not {value!r}.")


def _uri(env: Mapping[str, str]) -> str:
    value = env.get("BERTH_LDAP_URI", "").strip()
    uris = value.split()
    if not uris or not all(uri.lower().startswith(URI_SCHEMES) for uri in uris):
        raise _fail("BERTH_LDAP_URI", "use ldap://host:port, ldaps://host:port or ldapi://.")
    return value


def _user_filter(env: Mapping[str, str]) -> str:
    name = "BERTH_LDAP_USER_FILTER"
    value = env.get(name, "").strip() or DEFAULT_USER_FILTER
    if "%(user)s" not in value:
        raise _fail(name, "must contain %(user)s where the login name goes.")
    try:
        probe = value % {"user": "probe"}
    except (KeyError, ValueError, TypeError) as exc:
        raise _fail(name, f"is not a valid filter template ({exc}).") from None
    if not (probe.startswith("(") and probe.endswith(")")) or probe.count("(") != probe.count(")"):
        raise _fail(name, f"{value!r} is not a parenthesised LDAP filter.")
    return value


def _group_type(env: Mapping[str, str]) -> tuple[Any, str]:
    name = "BERTH_LDAP_GROUP_TYPE"
    value = env.get(name, "").strip() or "groupOfNames"
    try:
        type_class, object_filter = GROUP_TYPES[value.lower()]
    except KeyError:
        raise _fail(name, "use groupOfNames, groupOfUniqueNames or posixGroup.") from None
    return type_class(), object_filter


def _role_targets(dn: str, value: Any) -> tuple[tuple[str, str], ...]:
    """`"slug:role"` or a list of them, for one group DN of the role map."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail("BERTH_LDAP_ROLE_MAP", f"the value for {dn!r} must be 'tenant:role'.")
    targets = []
    for item in items:
        slug, sep, role = str(item).strip().partition(":")
        if not sep or not slug or " " in slug or role not in Role.values:
            raise _fail(
                "BERTH_LDAP_ROLE_MAP",
                f"{item!r} for {dn!r} must be 'tenant-slug:role' with a role among "
                f"{', '.join(Role.values)}.",
            )
        targets.append((slug, role))
    return tuple(targets)


def parse_role_map(raw: str) -> RoleMap:
    """Parse the JSON object `{"<group DN>": "tenant:role" | ["tenant:role", ...]}`."""
    name = "BERTH_LDAP_ROLE_MAP"
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _fail(name, f"is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise _fail(name, 'must be a JSON object: {"<group DN>": "tenant:role"}.')
    role_map: RoleMap = {}
    for dn, value in data.items():
        if not ldap.dn.is_dn(dn) or not dn.strip():
            raise _fail(name, f"{dn!r} is not a valid group DN.")
        role_map[normalize_dn(dn)] = role_map.get(normalize_dn(dn), ()) + _role_targets(dn, value)
    return role_map


def _connection_options(env: Mapping[str, str]) -> dict:
    options: dict = {ldap.OPT_REFERRALS: 0}
    timeout_name = "BERTH_LDAP_TIMEOUT"
    try:
        timeout = int(env.get(timeout_name, "").strip() or "10")
    except ValueError:
        raise _fail(timeout_name, "must be a whole number of seconds.") from None
    if not 1 <= timeout <= 300:
        raise _fail(timeout_name, "must be between 1 and 300 seconds.")
    options[ldap.OPT_NETWORK_TIMEOUT] = timeout
    options[ldap.OPT_TIMEOUT] = timeout
    ca_file = env.get("BERTH_LDAP_CA_CERT_FILE", "").strip()
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # must come last: applies the TLS options above
    return options


def _attr_map(env: Mapping[str, str]) -> dict[str, str]:
    return {
        "email": env.get("BERTH_LDAP_EMAIL_ATTR", "").strip() or "mail",
        "first_name": env.get("BERTH_LDAP_FIRST_NAME_ATTR", "").strip() or "givenName",
        "last_name": env.get("BERTH_LDAP_LAST_NAME_ATTR", "").strip() or "sn",
    }


def _group_settings(env: Mapping[str, str], role_map: RoleMap) -> dict:
    """Group search, type and staff/superuser flags; only when something needs groups."""
    base = _dn(env, "BERTH_LDAP_GROUP_SEARCH_BASE")
    staff = _dn(env, "BERTH_LDAP_STAFF_GROUP")
    superuser = _dn(env, "BERTH_LDAP_SUPERUSER_GROUP")
    group_type, object_filter = _group_type(env)
    if not base:
        for name, needed in (
            ("BERTH_LDAP_ROLE_MAP", role_map),
            ("BERTH_LDAP_STAFF_GROUP", staff),
            ("BERTH_LDAP_SUPERUSER_GROUP", superuser),
        ):
            if needed:
                raise _fail(name, "needs BERTH_LDAP_GROUP_SEARCH_BASE to be set.")
        return {}
    flags: dict[str, list[str]] = {}
    if staff or superuser:
        flags["is_staff"] = [dn for dn in (staff, superuser) if dn]
    if superuser:
        flags["is_superuser"] = [superuser]
    return {
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(base, ldap.SCOPE_SUBTREE, object_filter),
        "AUTH_LDAP_GROUP_TYPE": group_type,
        "AUTH_LDAP_USER_FLAGS_BY_GROUP": flags,
    }


def ldap_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The AUTH_LDAP_* settings for BerthLDAPBackend, from BERTH_LDAP_* variables."""
    role_map = parse_role_map(env.get("BERTH_LDAP_ROLE_MAP", ""))
    user_base = _dn(env, "BERTH_LDAP_USER_SEARCH_BASE", required=True)
    settings: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": _uri(env),
        "AUTH_LDAP_BIND_DN": _dn(env, "BERTH_LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": env.get("BERTH_LDAP_BIND_PASSWORD", ""),
        "AUTH_LDAP_START_TLS": _bool(env, "BERTH_LDAP_START_TLS"),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, _user_filter(env)),
        "AUTH_LDAP_USER_ATTR_MAP": _attr_map(env),
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "AUTH_LDAP_CONNECTION_OPTIONS": _connection_options(env),
        "AUTH_LDAP_ROLE_MAP": role_map,
    }
    settings.update(_group_settings(env, role_map))
    return settings
