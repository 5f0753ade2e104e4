"""Which registry actions a principal gets for a requested scope. Pure: no database.

The token service asks `grant(principal, scopes, facts)`; the answer is the intersection
of what was asked and what the principal may do, so a token never carries more than
either. Scope strings follow the Docker registry token specification:
`repository:acme/web:pull,push`, `registry:catalog:*`, several separated by spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from apps.core.roles import Role, rank

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
REPOSITORY_ACTIONS = (PULL, PUSH, DELETE)
# The distribution grammar of a repository name (path components, lowercase).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TYPE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
MAX_NAME = 255


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class Principal:
    """Who asks. `kind`: user, robot, deployer (Berth's own short-lived credential: pull,
    or push when `robot_scope` says so, for the publisher) or anonymous. `roles` maps
    tenant slug -> role for users; `token_tenant` and `read_only` narrow a user
    authenticated with an API token."""

    kind: str
    name: str = ""
    roles: Mapping[str, str] = field(default_factory=dict)
    platform_admin: bool = False
    read_only: bool = False
    token_tenant: str | None = None
    tenant: str | None = None  # robot's / deployer's tenant slug
    robot_scope: str = PULL  # "pull" or "push"
    robot_repositories: tuple[str, ...] = ()  # empty: every repository of the tenant

    @property
    def signed_in(self) -> bool:
        return self.kind != "anonymous"


@dataclass(frozen=True)
class RepositoryFacts:
    """What the database says about a repository name; passed in to keep this module pure."""

    tenant_exists: bool
    public: bool = False


ANONYMOUS = Principal(kind="anonymous")
Facts = Callable[[str], RepositoryFacts]


def parse_scope(text: str) -> list[Scope]:
    """Parse one `scope` parameter (may hold several space-separated scopes).

    Malformed parts are dropped, not fatal: the spec lets the service grant less than
    asked, and an empty grant is still a valid (useless) token.
    """
    scopes = []
    for part in (text or "").split():
        first, last = part.find(":"), part.rfind(":")
        if first <= 0 or last == first:
            continue
        rtype, name, actions = part[:first], part[first + 1 : last], part[last + 1 :]
        wanted = tuple(dict.fromkeys(a for a in actions.split(",") if a))
        if _TYPE.match(rtype) and name and len(name) <= MAX_NAME and wanted:
            scopes.append(Scope(rtype, name, wanted))
    return scopes


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    return [scope for value in values for scope in parse_scope(value)]


def split_repository(name: str) -> tuple[str, str] | None:
    """`acme/team/web` -> ("acme", "team/web"); None when not under a tenant namespace."""
    if not REPOSITORY_NAME.match(name) or "/" not in name:
        return None
    namespace, _, path = name.partition("/")
    return namespace, path


def _role_actions(role: str | None) -> set[str]:
    if role is None:
        return set()
    if rank(role) >= rank(Role.ADMIN):
        return {PULL, PUSH, DELETE}
    if rank(role) >= rank(Role.MEMBER):
        return {PULL, PUSH}
    return {PULL}


def _user_actions(principal: Principal, namespace: str) -> set[str]:
    if principal.token_tenant and principal.token_tenant != namespace:
        actions: set[str] = set()
    elif principal.platform_admin:
        actions = set(REPOSITORY_ACTIONS)
    else:
        actions = _role_actions(principal.roles.get(namespace))
    if principal.read_only:
        actions &= {PULL}
    return actions


def _robot_actions(principal: Principal, namespace: str, path: str) -> set[str]:
    if namespace != principal.tenant:
        return set()
    if principal.robot_repositories and path not in principal.robot_repositories:
        return set()
    return {PULL, PUSH} if principal.robot_scope == PUSH else {PULL}


def _deployer_actions(principal: Principal, namespace: str) -> set[str]:
    """Berth's own short-lived credentials: pull (deployments) or push and pull (the
    publisher of the platform's images), only in their tenant's namespace."""
    if namespace != principal.tenant:
        return set()
    return {PULL, PUSH} if principal.robot_scope == PUSH else {PULL}


def allowed_repository_actions(
    principal: Principal, name: str, facts: RepositoryFacts, anonymous_pull: bool = False
) -> set[str]:
    """Everything `principal` may do on repository `name`, whatever was asked."""
    parts = split_repository(name)
    if parts is None or not facts.tenant_exists:
        return set()
    namespace, path = parts
    if principal.kind == "user":
        actions = _user_actions(principal, namespace)
    elif principal.kind == "robot":
        actions = _robot_actions(principal, namespace, path)
    elif principal.kind == "deployer":
        actions = _deployer_actions(principal, namespace)
    else:
        actions = set()
    if facts.public and (principal.signed_in or anonymous_pull):
        actions.add(PULL)
    return actions


def _narrow(asked: tuple[str, ...], allowed: set[str], everything: set[str]) -> list[str]:
    """Asked ∩ allowed, keeping the asked order; `*` only when everything is allowed."""
    granted = []
    for action in asked:
        if action == ALL:
            if everything and everything <= allowed:
                granted.append(ALL)
            else:
                granted.extend(a for a in sorted(allowed & everything) if a not in asked)
        elif action in allowed and action in everything:
            granted.append(action)
    return list(dict.fromkeys(granted))


def grant(
    principal: Principal, scopes: Iterable[Scope], facts: Facts, anonymous_pull: bool = False
) -> list[dict]:
    """The token's `access` claim: one entry per scope with at least one action granted."""
    access: dict[tuple[str, str], list[str]] = {}
    for scope in scopes:
        if scope.type == "repository":
            allowed = allowed_repository_actions(
                principal, scope.name, facts(scope.name), anonymous_pull
            )
            granted = _narrow(scope.actions, allowed, set(REPOSITORY_ACTIONS))
        elif scope.type == "registry" and scope.name == "catalog":
            is_admin = principal.kind == "user" and principal.platform_admin
            granted = [ALL] if is_admin and ALL in scope.actions else []
        else:
            granted = []
        if granted:
            key = (scope.type, scope.name)
            merged = access.setdefault(key, [])
            merged.extend(a for a in granted if a not in merged)
    return [{"type": t, "name": n, "actions": a} for (t, n), a in access.items()]
