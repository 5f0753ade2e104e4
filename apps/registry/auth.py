"""Who is asking the token service: Basic credentials -> a scopes.Principal.

Accepted: a user's username (or e-mail) with their password; the same with one of their
API tokens as the password; a robot `robot$<tenant>+<name>` with its secret; Berth's
own short-lived `berth-deployer$<tenant>` (pull) and `berth-publisher$<tenant>` (push)
credentials. Anything else is None (401).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.core.cache import cache

from apps.accounts.authentication import touch_last_used
from apps.accounts.models import TOKEN_PREFIX, find_token
from apps.registry.robots import find_robot, parse_username
from apps.registry.scopes import PUSH, Principal
from apps.registry.tokens import check_deployer, check_publisher
from apps.tenants.models import Membership
from apps.tenants.querysets import is_platform_admin

MAX_CREDENTIAL = 500
# Failed logins per (client address, username) before the endpoint answers 429 for a while:
# the token endpoint is a password oracle otherwise (allauth's limits cover only its forms).
MAX_FAILURES = 10
FAILURE_WINDOW = 300


def _failure_key(address: str, username: str) -> str:
    return f"registry-token-failures:{address}:{username[:MAX_CREDENTIAL].casefold()}"


def too_many_failures(address: str, username: str) -> bool:
    return cache.get(_failure_key(address, username), 0) >= MAX_FAILURES


def record_failure(address: str, username: str) -> None:
    key = _failure_key(address, username)
    if not cache.add(key, 1, FAILURE_WINDOW):
        try:
            cache.incr(key)
        except ValueError:  # expired in between
            cache.add(key, 1, FAILURE_WINDOW)


def _user_principal(user: Any, token: Any = None) -> Principal:
    roles = dict(Membership.objects.filter(user=user).values_list("tenant__slug", "role"))
    return Principal(
        kind="user",
        name=user.get_username(),
        roles=roles,
        platform_admin=is_platform_admin(user, token),
        read_only=bool(token and token.read_only),
        token_tenant=token.tenant.slug if token is not None and token.tenant_id else None,
    )


def _names_match(user: Any, username: str) -> bool:
    wanted = username.casefold()
    return wanted in {user.get_username().casefold(), (user.email or "").casefold()}


def _by_api_token(username: str, raw: str) -> Principal | None:
    token = find_token(raw)
    if token is None or not _names_match(token.user, username):
        return None
    touch_last_used(token)
    return _user_principal(token.user, token)


def _by_password(request: Any, username: str, password: str) -> Principal | None:
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    return _user_principal(user)


def authenticate_basic(request: Any, username: str, password: str) -> Principal | None:
    """The principal for these Basic credentials, or None when they are not valid."""
    if not username or not password or max(len(username), len(password)) > MAX_CREDENTIAL:
        return None
    if parse_username(username) is not None:
        robot = find_robot(username, password)
        if robot is None:
            return None
        return Principal(
            kind="robot",
            name=robot.username,
            tenant=robot.tenant.slug,
            robot_scope=PUSH if robot.scope == robot.Scope.PUSH else "pull",
            robot_repositories=tuple(robot.repositories or ()),
        )
    deployer_tenant = check_deployer(username, password)
    if deployer_tenant is not None:
        return Principal(kind="deployer", name=username, tenant=deployer_tenant)
    publisher_tenant = check_publisher(username, password)
    if publisher_tenant is not None:
        return Principal(kind="deployer", name=username, tenant=publisher_tenant, robot_scope=PUSH)
    if password.startswith(TOKEN_PREFIX):
        principal = _by_api_token(username, password)
        if principal is not None:
            return principal
    return _by_password(request, username, password)
