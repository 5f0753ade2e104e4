"""LDAP login that also maps directory groups to tenant memberships.

At every LDAP login the user's groups are read and BERTH_LDAP_ROLE_MAP (parsed into
AUTH_LDAP_ROLE_MAP by ldap_settings.py) says which tenant and role each group gives.
Memberships the directory grants are marked `source="ldap"`; they follow the groups,
and go (with their tenant-bound tokens) when the group goes. Memberships created in
Berth (`source="local"`) are never touched by the directory.

Every LDAP login also marks the account as directory-managed (DirectoryAccount): from
then on its password lives only in the directory, and no local password works.

A directory login finds its account by the entry's DN (DirectoryAccount), never by
user name alone: a local account that happens to bear the same name (created before
the directory had that person) is never taken over with its tokens and social logins.
The login is refused and logged until an operator links or renames the local account.
"""

from __future__ import annotations

import logging
from typing import Any

import ldap
import ldap.dn
import ldap.filter
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django_auth_ldap.backend import LDAPBackend

from apps.accounts.ldap_settings import RoleMap, normalize_dn
from apps.accounts.models import DirectoryAccount
from apps.activity.models import Event
from apps.activity.services import record_event
from apps.core.roles import Role, rank
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

LDAP_SOURCE = "ldap"


def desired_roles(group_dns: set[str] | list[str], role_map: RoleMap) -> dict[str, str]:
    """Tenant slug -> role from the user's groups; the highest role wins per tenant."""
    wanted: dict[str, str] = {}
    for dn in group_dns:
        for slug, role in role_map.get(normalize_dn(dn), ()):
            if slug not in wanted or rank(role) > rank(wanted[slug]):
                wanted[slug] = role
    return wanted


def _grant(user: Any, tenant: Tenant, role: str, current: Membership | None) -> None:
    """Create or re-role an LDAP membership; local memberships are left alone."""
    if current is None:
        membership = Membership.objects.create(
            tenant=tenant, user=user, role=role, source=LDAP_SOURCE
        )
        record_event(
            "membership.ldap_add",
            actor=user,
            tenant=tenant,
            obj=membership,
            message=f"{user} joined as {role} through an LDAP group",
        )
    elif current.source == LDAP_SOURCE and current.role != role:
        if current.role == Role.OWNER and not _other_owners(current):
            logger.warning("LDAP: keeping %s as the last owner of %s", user, tenant.slug)
            return
        old, current.role = current.role, role
        current.save(update_fields=["role"])
        record_event(
            "membership.ldap_role",
            actor=user,
            tenant=tenant,
            obj=current,
            message=f"{user} role {old} -> {role} through LDAP groups",
        )


def _other_owners(membership: Membership) -> bool:
    others = Membership.objects.filter(tenant=membership.tenant, role=Role.OWNER)
    return others.exclude(pk=membership.pk).exists()


def _revoke(user: Any, membership: Membership) -> None:
    """The group is gone: leave the tenant the normal way (tokens revoked, event kept)."""
    try:
        tenant_services.remove_member(actor=user, membership=membership)
    except ValidationError:
        logger.warning(
            "LDAP: %s left the group but is the last owner of %s; membership kept",
            user,
            membership.tenant.slug,
        )


@transaction.atomic
def sync_memberships(user: Any, group_dns: set[str] | list[str], role_map: RoleMap) -> None:
    """Make the user's LDAP memberships match their directory groups.

    Tenants named in the map but missing here are skipped with a warning, never
    created: the operator creates tenants, the directory only fills them.
    """
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one sync a user
    wanted = desired_roles(group_dns, role_map)
    tenants = {t.slug: t for t in Tenant.objects.filter(slug__in=wanted)}
    for slug in sorted(set(wanted) - set(tenants)):
        logger.warning("LDAP: tenant %r in BERTH_LDAP_ROLE_MAP does not exist; skipped", slug)
    current = {
        m.tenant.slug: m for m in Membership.objects.filter(user=user).select_related("tenant")
    }
    for slug, tenant in tenants.items():
        _grant(user, tenant, wanted[slug], current.get(slug))
    for slug, membership in current.items():
        if membership.source == LDAP_SOURCE and slug not in tenants:
            _revoke(user, membership)


class NameTakenLocallyError(Exception):
    """A local account (not linked to this directory entry) already has the name."""


def directory_account_user(username: str, dn: str) -> tuple[Any, bool]:
    """The account of the directory entry `dn`, as django-auth-ldap's (user, built) pair.

    Found by its DN; an account marked before DNs were recorded (blank DN) by its name.
    A new, unsaved user when nobody has the name; NameTakenLocallyError when a local account
    has it: that account is someone else's until an operator links it to the entry
    (admin: Directory accounts, with the DN) or renames it.
    """
    model = get_user_model()
    account = (
        DirectoryAccount.objects.select_related("user")
        .filter(Q(dn__iexact=dn) | Q(dn="", user__username__iexact=username))
        .order_by("-dn")
        .first()
    )
    if account is not None:
        return account.user, False
    if model.objects.filter(username__iexact=username).exists():
        raise NameTakenLocallyError(username)
    return model(username=username.lower()), True


@transaction.atomic
def mark_directory_managed(user: Any, dn: str) -> DirectoryAccount:
    """The directory owns this account's password: mark it and drop any local password.

    Only accounts created by a directory login, or linked to the entry by an operator,
    get here (directory_account_user); a linked account loses its local password now.
    """
    account, created = DirectoryAccount.objects.update_or_create(user=user, defaults={"dn": dn})
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if created:
        record_event(
            "account.directory",
            actor=user,
            obj=account,
            message=f"{user} signs in through the LDAP directory; local password disabled",
        )
    return account


class BerthLDAPBackend(LDAPBackend):
    """django-auth-ldap with tenant memberships from groups and Django's is_active rule."""

    default_settings = {"ROLE_MAP": {}}

    def get_or_build_user(self, username, ldap_user):
        try:
            return directory_account_user(username, ldap_user.dn or "")
        except NameTakenLocallyError:
            logger.warning(
                "LDAP: refused the login of %s (%s): an account not linked to this entry "
                "already has this name; link it (admin: Directory accounts) or rename it",
                username,
                ldap_user.dn,
            )
            record_event(
                "account.directory_conflict",
                outcome=Event.Outcome.FAILURE,
                message=f"LDAP login of {username} ({ldap_user.dn}) refused: an account "
                "not linked to this directory entry already has this name",
            )
            raise ldap_user.AuthenticationFailed("a local account has this name") from None

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        mark_directory_managed(user, ldap_user.dn or "")
        if not user.is_active:
            return None
        role_map: RoleMap = self.settings.ROLE_MAP
        try:
            group_dns = ldap_user.group_dns if role_map else set()
        except ldap.LDAPError as exc:
            # Without the groups we cannot tell which tenants the user still belongs to.
            logger.error("LDAP: group search for %s failed (%s); login refused", user, exc)
            return None
        sync_memberships(user, group_dns, role_map)
        return user

    def get_user(self, user_id):
        """A deactivated user's session ends at their next request, as with ModelBackend."""
        user = super().get_user(user_id)
        if user is not None and not user.is_active:
            return None
        return user


# --- is a name or address the directory's? (local and OAuth sign-up ask) --------------


class DirectoryUnavailableError(Exception):
    """The directory could not be asked; sign-up waits rather than guess."""


def ldap_login_enabled() -> bool:
    from django.conf import settings

    return f"{__name__}.{BerthLDAPBackend.__name__}" in settings.AUTHENTICATION_BACKENDS


def _connect(config) -> Any:
    conn = ldap.initialize(config.SERVER_URI)
    for option, value in config.CONNECTION_OPTIONS.items():
        conn.set_option(option, value)
    if config.START_TLS:
        conn.start_tls_s()
    conn.simple_bind_s(config.BIND_DN, config.BIND_PASSWORD)
    return conn


def _found(conn: Any, base: str, scope: int, filterstr: str) -> bool:
    try:
        results = conn.search_s(base, scope, filterstr, ["1.1"])
    except ldap.NO_SUCH_OBJECT:
        return False
    except ldap.SIZELIMIT_EXCEEDED:
        return True
    return any(dn for dn, _attrs in results)  # referrals come with dn None


def _user_searches(config) -> list:
    search = config.USER_SEARCH
    return [] if search is None else list(getattr(search, "searches", [search]))


def _owns_username(conn: Any, config, username: str) -> bool:
    value = ldap.filter.escape_filter_chars(username)
    for search in _user_searches(config):
        if _found(conn, search.base_dn, search.scope, search.filterstr % {"user": value}):
            return True
    template = config.USER_DN_TEMPLATE
    if template:
        dn = template % {"user": ldap.dn.escape_dn_chars(username)}
        return _found(conn, dn, ldap.SCOPE_BASE, "(objectClass=*)")
    return False


def _owns_email(conn: Any, config, email: str) -> bool:
    attr = config.USER_ATTR_MAP.get("email", "mail")
    filterstr = ldap.filter.filter_format(f"({attr}=%s)", [email])
    return any(
        _found(conn, search.base_dn, search.scope, filterstr) for search in _user_searches(config)
    )


def directory_owns(*, username: str = "", email: str = "") -> bool:
    """True when the LDAP directory has an entry with this login name or e-mail address.

    Asked at local and OAuth sign-up, so nobody claims a directory person's name or
    address before that person's first login. False when LDAP login is off; raises
    DirectoryUnavailableError when the directory cannot be asked (callers refuse then).
    """
    if not (username or email) or not ldap_login_enabled():
        return False
    config = BerthLDAPBackend().settings
    try:
        conn = _connect(config)
        try:
            return bool(username and _owns_username(conn, config, username)) or bool(
                email and _owns_email(conn, config, email)
            )
        finally:
            conn.unbind_s()
    except ldap.LDAPError as exc:
        logger.error("LDAP: could not check the directory at sign-up (%s)", exc)
        raise DirectoryUnavailableError(str(exc)) from exc
