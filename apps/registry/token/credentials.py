"""Who is asking the token service: Basic credentials -> a scopes.Principal.

Accepted: a user's username (or e-mail) with their password; the same with one of their
API tokens as the password; a robot `robot$<tenant>+<name>` with its secret; Berth's
own short-lived `berth-deployer$<tenant>` (pull) and `berth-publisher$<tenant>` (push)
credentials, made here too. Anything else is None (401).

A robot's secret is shown once and only its sha256 is stored, like API tokens; its
rights are fixed at creation (pull, or push and pull; on all or on named repositories of
its tenant) and never exceed the tenant's namespace.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import authenticate
from django.core import signing
from django.core.cache import cache

from apps.accounts.authentication import touch_last_used
from apps.accounts.models import TOKEN_PREFIX, find_token
from apps.core.tenancy import is_platform_admin
from apps.registry.models import RobotAccount
from apps.registry.token.scopes import PUSH, Principal
from apps.tenants.models import Membership, hash_secret

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


# --- robots -----------------------------------------------------------------------------

SECRET_PREFIX = "berthrobot_"
USERNAME_PREFIX = "robot$"
ACTIONS_BY_SCOPE = {
    RobotAccount.Scope.PULL: frozenset({"pull"}),
    RobotAccount.Scope.PUSH: frozenset({"pull", "push"}),
}


def parse_username(username: str) -> tuple[str, str] | None:
    """`robot$acme+ci` -> ("acme", "ci"); None when it is not a robot's name."""
    if not username or not username.startswith(USERNAME_PREFIX):
        return None
    tenant_slug, plus, name = username[len(USERNAME_PREFIX) :].partition("+")
    if not plus or not tenant_slug or not name:
        return None
    return tenant_slug, name


def find_robot(username: str, secret: str) -> RobotAccount | None:
    """The usable robot for these credentials, or None; its use is recorded (last_used_at,
    to the minute: written at most once a minute, like API tokens).

    Compares hashes only; a revoked or expired robot is None like a wrong secret.
    """
    parsed = parse_username(username)
    if parsed is None or not secret or len(secret) > 200:
        return None
    tenant_slug, name = parsed
    robot = (
        RobotAccount.objects.select_related("tenant")
        .filter(tenant__slug=tenant_slug, name=name, secret_hash=hash_secret(secret))
        .first()
    )
    if robot is None or not robot.is_usable:
        return None
    touch_last_used(robot)
    return robot


def robot_allows(robot: RobotAccount, repository: str, action: str) -> bool:
    """May this robot do `action` ("pull"/"push") on `repository` ("acme/web")?

    Only inside its tenant's namespace, only its scope's actions, and only on its named
    repositories when it has any.
    """
    if not robot.is_usable or action not in ACTIONS_BY_SCOPE.get(robot.scope, ()):
        return False
    prefix = f"{robot.tenant.slug}/"
    if not repository.startswith(prefix):
        return False
    name = repository[len(prefix) :]
    return not robot.repositories or name in robot.repositories


# --- Berth's own short-lived credentials ------------------------------------------------

DEPLOYER_PREFIX = "berth-deployer$"
DEPLOYER_SALT = "berth.registry.deployer"
DEPLOYER_SECONDS = 300
PUBLISHER_PREFIX = "berth-publisher$"
PUBLISHER_SALT = "berth.registry.publisher"


def _signed_credentials(prefix: str, salt: str, tenant_slug: str) -> tuple[str, str]:
    password = signing.dumps(
        {"t": tenant_slug, "n": secrets.token_hex(8)}, salt=salt, compress=False
    )
    return prefix + tenant_slug, password


def _check_signed(prefix: str, salt: str, username: str, password: str) -> str | None:
    if not username.startswith(prefix) or not password or len(password) > 500:
        return None
    try:
        data = signing.loads(password, salt=salt, max_age=DEPLOYER_SECONDS)
    except signing.BadSignature:
        return None
    tenant = data.get("t") if isinstance(data, dict) else None
    return tenant if tenant and username == prefix + tenant else None


def deployer_credentials(tenant_slug: str) -> tuple[str, str]:
    """A (username, password) pair the token service accepts for pull in `tenant_slug`'s
    namespace (and public repositories) for five minutes: handed to the engine for one
    pull, so no login is ever left on it."""
    return _signed_credentials(DEPLOYER_PREFIX, DEPLOYER_SALT, tenant_slug)


def check_deployer(username: str, password: str) -> str | None:
    """The tenant slug when the deployer credential is genuine and fresh, else None."""
    return _check_signed(DEPLOYER_PREFIX, DEPLOYER_SALT, username, password)


def publisher_credentials(tenant_slug: str) -> tuple[str, str]:
    """Like the deployer's, with push in `tenant_slug`'s namespace: what `publishimages`
    hands to the engine to push the platform's own images, with no robot to clean up."""
    return _signed_credentials(PUBLISHER_PREFIX, PUBLISHER_SALT, tenant_slug)


def check_publisher(username: str, password: str) -> str | None:
    """The tenant slug when the publisher credential is genuine and fresh, else None."""
    return _check_signed(PUBLISHER_PREFIX, PUBLISHER_SALT, username, password)
