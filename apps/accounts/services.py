"""Creating and revoking API tokens, for the UI, the API and `createtoken`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.activity.services import record_event
from apps.core.roles import Role
from apps.tenants.models import Membership, Tenant, hash_secret

MAX_TOKEN_DAYS = 3650


def _check_membership(actor: Any, tenant: Tenant, read_only: bool) -> None:
    """A tenant-bound token acts with the actor's role there, platform admins included:
    binding one to a tenant the actor is not a member of would give a token with no rights,
    and a viewer's token can only read."""
    role = (
        Membership.objects.filter(tenant=tenant, user=actor).values_list("role", flat=True).first()
    )
    if role is None:
        raise PermissionDenied(
            "You are not a member of this tenant; a token bound to it acts with your role "
            "there, platform admins included."
        )
    if role == Role.VIEWER and not read_only:
        raise ValidationError(
            {"read_only": f"You are a viewer in {tenant.slug}: its tokens must be read-only."}
        )


def _check_parent(
    parent: ApiToken, tenant: Tenant | None, read_only: bool, expires_at: datetime | None
) -> datetime | None:
    """A token minting a token: the new one is no stronger and lives no longer.

    Returns the new token's expiry (the parent's when none was asked for).
    """
    if parent.read_only and not read_only:
        raise ValidationError({"read_only": "A read-only token can only create read-only tokens."})
    if parent.tenant_id and (tenant is None or tenant.pk != parent.tenant_id):
        raise ValidationError(
            {"tenant": f"This token is bound to {parent.tenant.slug}; so are the tokens it makes."}
        )
    if parent.expires_at is None:
        return expires_at
    if expires_at is None:
        return parent.expires_at
    if expires_at > parent.expires_at:
        raise ValidationError(
            {
                "expires_days": "A token cannot create a token that outlives it: this one "
                f"expires at {parent.expires_at:%Y-%m-%d %H:%M} UTC."
            }
        )
    return expires_at


@transaction.atomic
def create_token(
    *,
    actor: Any,
    name: str,
    tenant: Tenant | None = None,
    read_only: bool = False,
    expires_days: int | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `actor`; returns it with the raw key, which is never stored.

    A token can only be bound to a tenant the actor belongs to; its rights never exceed
    the actor's own, because every request re-checks the actor's membership. `parent` is
    the token the request came with: the new token is no stronger than it (same tenant,
    read-only if it is) and never outlives it (expiry and revocation).
    """
    name = (name or "").strip()
    errors = {}  # every bad field at once, not the first only
    if not name:
        errors["name"] = "Give the token a name."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        errors["expires_days"] = f"Choose between 1 and {MAX_TOKEN_DAYS} days."
    if errors:
        raise ValidationError(errors)
    if tenant is not None:
        _check_membership(actor, tenant, read_only)
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    if parent is not None:
        expires_at = _check_parent(parent, tenant, read_only, expires_at)
    raw = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=actor,
        name=name,
        tenant=tenant,
        read_only=read_only,
        parent=parent,
        prefix=raw[len("berth_") : len("berth_") + 8],
        key_hash=hash_secret(raw),
        expires_at=expires_at,
    )
    record_event("token.create", actor=actor, tenant=tenant, obj=token)
    return token, raw


@transaction.atomic
def revoke_token(*, actor: Any, token: ApiToken) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_superuser:
        raise PermissionDenied("You can only revoke your own tokens.")
    if token.revoked_at:
        raise ValidationError({"token": "This token is already revoked."})
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    _revoke_descendants(token)
    record_event("token.revoke", actor=actor, tenant=token.tenant, obj=token)
    return token


def _revoke_descendants(token: ApiToken) -> None:
    """Tokens minted by a revoked token are revoked with it (find_token also refuses a
    token whose parent is not usable; this keeps their listed status honest)."""
    level = [token.pk]
    while level:
        children = ApiToken.objects.filter(parent_id__in=level)
        children.filter(revoked_at__isnull=True).update(revoked_at=token.revoked_at)
        level = list(children.values_list("pk", flat=True))


def set_time_zone(actor: Any, time_zone: str) -> None:
    """Save the zone the user's pages show times in; "" goes back to the browser's zone.

    Checked against the tz database here too, so the API or a shell cannot store a name
    the middleware would then have to ignore."""
    from apps.accounts.models import Preferences
    from apps.core.timezones import zone_or_none

    if time_zone and zone_or_none(time_zone) is None:
        raise ValidationError({"time_zone": f"{time_zone!r} is no IANA time zone."})
    Preferences.objects.update_or_create(user=actor, defaults={"time_zone": time_zone})
