"""Creating and revoking API tokens, for the UI, the API and `createtoken`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.activity.services import record_event
from apps.tenants.models import Membership, Tenant, hash_secret
from apps.tenants.roles import Role

MAX_TOKEN_DAYS = 3650


@transaction.atomic
def create_token(
    *,
    actor: Any,
    name: str,
    tenant: Tenant | None = None,
    read_only: bool = False,
    expires_days: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `actor`; returns it with the raw key, which is never stored.

    A token can only be bound to a tenant the actor belongs to; its rights never exceed
    the actor's own, because every request re-checks the actor's membership.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name."})
    if len(name) > 100:
        raise ValidationError({"name": "Use at most 100 characters."})
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise ValidationError({"expires_days": f"Choose between 1 and {MAX_TOKEN_DAYS} days."})
    if tenant is not None and not actor.is_superuser:
        role = (
            Membership.objects.filter(tenant=tenant, user=actor)
            .values_list("role", flat=True)
            .first()
        )
        if role is None:
            raise PermissionDenied("You are not a member of this tenant.")
        if role == Role.VIEWER and not read_only:
            raise ValidationError(
                {"read_only": f"You are a viewer in {tenant.slug}: its tokens must be read-only."}
            )
    raw = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=actor,
        name=name,
        tenant=tenant,
        read_only=read_only,
        prefix=raw[len("berth_") : len("berth_") + 8],
        key_hash=hash_secret(raw),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
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
    record_event("token.revoke", actor=actor, tenant=token.tenant, obj=token)
    return token
