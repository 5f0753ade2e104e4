"""Robot accounts: CI credentials of one tenant, `robot$<tenant>+<name>`.

The secret is shown once and only its sha256 is stored, like API tokens. A robot's rights
are fixed at creation (pull, or push and pull; on all or on named repositories of its
tenant) and never exceed the tenant's namespace: the token service asks `robot_allows`.
Creating and revoking need the tenant's admin role, because a robot outlives the person
who made it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.authentication import touch_last_used
from apps.activity.services import record_event
from apps.registry.models import RobotAccount, repository_name_validator, robot_name_validator
from apps.tenants.models import Tenant, hash_secret
from apps.tenants.roles import Role
from apps.tenants.services import require_role

SECRET_PREFIX = "berthrobot_"
USERNAME_PREFIX = "robot$"
MAX_ROBOT_DAYS = 730
MAX_REPOSITORIES = 50
ACTIONS_BY_SCOPE = {
    RobotAccount.Scope.PULL: frozenset({"pull"}),
    RobotAccount.Scope.PUSH: frozenset({"pull", "push"}),
}


def _clean_repositories(repositories: Iterable[str] | str | None) -> list[str]:
    """Names under the tenant namespace, without the `<tenant>/` prefix; [] means all."""
    if isinstance(repositories, str):
        repositories = repositories.replace(",", " ").split()
    names = sorted({(name or "").strip().strip("/") for name in repositories or ()} - {""})
    if len(names) > MAX_REPOSITORIES:
        raise ValidationError({"repositories": f"Name at most {MAX_REPOSITORIES} repositories."})
    for name in names:
        try:
            repository_name_validator(name)
        except ValidationError as exc:
            raise ValidationError({"repositories": f"{name!r}: {exc.messages[0]}"}) from exc
    return names


def _expiry(expires_days: int | None, expires_at: datetime | None) -> datetime | None:
    if expires_at is not None:
        if expires_at <= timezone.now():
            raise ValidationError({"expires_at": "Choose a moment in the future."})
        return expires_at
    if expires_days is None:
        return None
    if not 1 <= int(expires_days) <= MAX_ROBOT_DAYS:
        raise ValidationError({"expires_days": f"Choose between 1 and {MAX_ROBOT_DAYS} days."})
    return timezone.now() + timedelta(days=int(expires_days))


def _validated_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the robot a name."})
    try:
        robot_name_validator(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc
    return name


def create_robot(
    *,
    actor: Any,
    tenant: Tenant,
    name: str,
    scope: str = RobotAccount.Scope.PULL,
    repositories: Iterable[str] | str | None = (),
    expires_days: int | None = None,
    expires_at: datetime | None = None,
    description: str = "",
) -> tuple[RobotAccount, str]:
    """Create a robot of `tenant`; returns it with the raw secret, which is never stored."""
    require_role(actor, tenant, Role.ADMIN)
    name = _validated_name(name)
    if scope not in ACTIONS_BY_SCOPE:
        raise ValidationError({"scope": "Choose pull, or push (push and pull)."})
    raw = SECRET_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            robot = RobotAccount.objects.create(
                tenant=tenant,
                name=name,
                description=(description or "").strip()[:300],
                scope=scope,
                repositories=_clean_repositories(repositories),
                expires_at=_expiry(expires_days, expires_at),
                secret_hash=hash_secret(raw),
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
    except IntegrityError as exc:
        raise ValidationError({"name": f"{tenant.slug} already has a robot {name}."}) from exc
    record_event(
        "registry.robot.create",
        actor=actor,
        tenant=tenant,
        obj=robot,
        data={"scope": scope, "repositories": robot.repositories},
    )
    return robot, raw


@transaction.atomic
def revoke_robot(*, actor: Any, robot: RobotAccount) -> RobotAccount:
    """Revoke at once: the next token request with its secret is refused."""
    require_role(actor, robot.tenant, Role.ADMIN)
    robot = RobotAccount.objects.select_for_update().get(pk=robot.pk)
    if robot.revoked_at is None:
        robot.revoked_at = timezone.now()
        robot.save(update_fields=["revoked_at"])
        record_event("registry.robot.revoke", actor=actor, tenant=robot.tenant, obj=robot)
    return robot


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


authenticate_robot = find_robot


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
