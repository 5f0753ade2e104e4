"""Every change to tenants, members, environments and invitations goes through here.

Views, API viewsets and management commands call these functions; each one checks the
actor's role, writes inside a transaction and records one Event.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.activity.services import record_event
from apps.core.queue import enqueue_on_commit
from apps.core.roles import Role, can_grant
from apps.core.tenancy import require_role
from apps.tenants.models import (
    DEFAULT_ENVIRONMENTS,
    PLATFORM_TENANT,
    Environment,
    Invitation,
    Membership,
    RetiredTenant,
    Tenant,
    TenantQuota,
    hash_secret,
)
from apps.tenants.quotas import TENANT_LIMITS, providers


def _validated(instance, exclude: list[str] | None = None):
    instance.full_clean(exclude=exclude)
    return instance


@transaction.atomic
def create_tenant(*, actor: Any, slug: str, name: str = "", description: str = "", owner=None):
    """Create a tenant with its default environments; `owner` (or the actor) owns it."""
    owner = owner or actor
    tenant = check_new_tenant(slug=slug, name=name, description=description)
    tenant.save()
    TenantQuota.objects.create(tenant=tenant)  # settings.BERTH_TENANT_QUOTA_DEFAULTS
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    for env_slug in DEFAULT_ENVIRONMENTS:
        Environment.objects.create(tenant=tenant, slug=env_slug, name=env_slug.capitalize())
    record_event("tenant.create", actor=actor, tenant=tenant, obj=tenant)
    return tenant


def check_new_tenant(*, slug: str, name: str = "", description: str = "") -> Tenant:
    """create_tenant's checks, creating nothing (a refused form runs them too, so one
    submit shows every problem); returns the unsaved tenant."""
    tenant = _validated(Tenant(slug=slug, name=name or slug, description=description))
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": "A tenant with this slug already exists."})
    if RetiredTenant.objects.filter(slug=slug, registry_cleared_at__isnull=True).exists():
        raise ValidationError(
            {
                "slug": "A deleted tenant's images under this slug are still being removed; "
                "try again in a few minutes or choose another slug."
            }
        )
    return tenant


def tenant_quota(tenant: Tenant) -> TenantQuota:
    """The tenant's quota row, made with settings.BERTH_TENANT_QUOTA_DEFAULTS on first use."""
    quota, _ = TenantQuota.objects.get_or_create(tenant=tenant)
    return quota


MAX_QUOTA = {"stacks": 100_000, "containers": 1_000_000, "pids": 4_194_304, "cpus": 99_999}


def quota_value(key: str, value: Any) -> int | Decimal:
    """A limit as stored, or a ValidationError naming the key (0 is unlimited)."""
    problem = ValidationError({key: "Use 0 (unlimited) or a positive number."})
    if isinstance(value, bool):
        raise problem
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise problem from None
    if not number.is_finite() or number < 0:
        raise problem
    if key == "cpus":
        if number != number.quantize(Decimal("0.01")) or number > MAX_QUOTA["cpus"]:
            raise ValidationError({key: "Use CPUs with at most two decimals, up to 99999."})
        return number
    if number != number.to_integral_value():
        raise ValidationError({key: "Use a whole number."})
    if key in MAX_QUOTA and number > MAX_QUOTA[key]:
        raise ValidationError({key: f"Use at most {MAX_QUOTA[key]}."})
    if key == "memory" and number >= 2**63:
        raise ValidationError({key: "Too large."})
    return int(number)


@transaction.atomic
def set_quotas(*, actor: Any, tenant: Tenant, values: dict[str, Any]) -> None:
    """Platform admins set a tenant's quotas (only the keys given; 0: unlimited).

    The keys of TenantQuota are set here; others (registry storage) by the provider that
    owns them. A quota lowered below what the tenant uses stops nothing: changes that add
    more are refused until the tenant is back under it."""
    if not (actor.is_active and actor.is_superuser):
        raise PermissionDenied("Only a platform administrator sets quotas.")
    known = {*TENANT_LIMITS, *(k for p in providers() for k in p.QUOTA_KEYS)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationError({key: "Not a quota." for key in unknown})
    Tenant.objects.select_for_update().get(pk=tenant.pk)  # serialised with the checks
    own, problems = {}, {}  # every bad quota at once, not the first only
    for key in (k for k in TENANT_LIMITS if k in values):
        try:
            own[key] = quota_value(key, values[key])
        except ValidationError as exc:
            problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    if own:
        quota = tenant_quota(tenant)
        for key, value in own.items():
            setattr(quota, key, value)
        quota.save(update_fields=[*own, "updated_at"])
        data = {key: str(value) for key, value in own.items()}
        record_event("tenant.quota", actor=actor, tenant=tenant, obj=quota, data=data)
    for provider in providers():
        theirs = {key: values[key] for key in provider.QUOTA_KEYS if key in values}
        if theirs:
            provider.set_quota_values(actor, tenant, theirs)


@transaction.atomic
def ensure_platform_tenant(*, owner: Any) -> tuple[Tenant, bool]:
    """The platform tenant (slug reserved for it), owned by a platform admin; created once.

    Its slug is reserved, so no user can take the namespace the platform's images live in.
    """
    existing = Tenant.objects.filter(slug=PLATFORM_TENANT).first()
    if existing is not None:
        return existing, False
    if not (owner.is_active and owner.is_superuser):
        raise PermissionDenied("Only a platform administrator owns the platform tenant.")
    tenant = Tenant(
        slug=PLATFORM_TENANT,
        name="Library",
        description="Images published by the platform, public to every tenant.",
    )
    _validated(tenant, exclude=["slug"]).save()
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    record_event("tenant.create", actor=owner, tenant=tenant, obj=tenant)
    return tenant, True


@transaction.atomic
def update_tenant(*, actor: Any, tenant: Tenant, name: str, description: str = "") -> Tenant:
    require_role(actor, tenant, Role.ADMIN)
    tenant.name = name
    tenant.description = description
    _validated(tenant, exclude=["slug"]).save(update_fields=["name", "description"])
    record_event("tenant.update", actor=actor, tenant=tenant, obj=tenant)
    return tenant


@transaction.atomic
def delete_tenant(*, actor: Any, tenant: Tenant) -> RetiredTenant:
    """Delete the tenant's rows now; its engine objects and images follow in the worker.

    Its containers are stopped at once and removed, with its networks and volumes, after
    BERTH_TENANT_REMOVAL_GRACE_SECONDS; its registry repositories are emptied
    (apps/deployments/retirement.py). The events about it are platform events (tenant
    None): the tenant's own activity log goes with it.
    """
    require_role(actor, tenant, Role.OWNER)
    grace = timedelta(seconds=settings.BERTH_TENANT_REMOVAL_GRACE_SECONDS)
    retired = RetiredTenant.objects.create(
        tenant_id=tenant.pk, slug=tenant.slug, remove_after=timezone.now() + grace
    )
    record_event(
        "tenant.delete",
        actor=actor,
        message=f"Deleted tenant {tenant.slug}; its containers are stopped now and removed "
        f"with its networks and volumes after {int(grace.total_seconds())} s.",
        data={"tenant": tenant.slug, "tenant_id": tenant.pk},
    )
    tenant.delete()
    # By name: the tenants app does not import the apps that build on it.
    enqueue_on_commit(current_app.signature("deployments.retire_tenant"), retired.pk)
    return retired


@transaction.atomic
def create_environment(
    *, actor: Any, tenant: Tenant, slug: str, name: str = "", description: str = ""
) -> Environment:
    require_role(actor, tenant, Role.ADMIN)
    env = check_new_environment(tenant=tenant, slug=slug, name=name, description=description)
    env.save()
    record_event("environment.create", actor=actor, tenant=tenant, obj=env)
    return env


def check_new_environment(
    *, tenant: Tenant, slug: str, name: str = "", description: str = ""
) -> Environment:
    """create_environment's checks, creating nothing; returns the unsaved environment."""
    env = Environment(tenant=tenant, slug=slug, name=name or slug, description=description)
    _validated(env, exclude=["tenant"])
    if Environment.objects.filter(tenant=tenant, slug=slug).exists():
        raise ValidationError({"slug": "This tenant already has an environment with this slug."})
    return env


@transaction.atomic
def update_environment(
    *, actor: Any, environment: Environment, name: str, description: str = ""
) -> Environment:
    require_role(actor, environment.tenant, Role.ADMIN)
    environment.name = name
    environment.description = description
    _validated(environment, exclude=["tenant", "slug"]).save(update_fields=["name", "description"])
    record_event("environment.update", actor=actor, tenant=environment.tenant, obj=environment)
    return environment


@transaction.atomic
def delete_environment(*, actor: Any, environment: Environment) -> None:
    tenant = environment.tenant
    require_role(actor, tenant, Role.ADMIN)
    if Environment.objects.filter(tenant=tenant).count() <= 1:
        raise ValidationError({"environment": "A tenant keeps at least one environment."})
    stacks = environment.stacks.count()
    if stacks:
        # Its stacks' containers would keep running with no stack to manage them.
        raise ValidationError(
            {"environment": f"It still has {stacks} stack(s): remove them first."}
        )
    record_event("environment.delete", actor=actor, tenant=tenant, obj=environment)
    environment.delete()


def _owners_left(tenant: Tenant, excluding: Membership) -> int:
    return (
        Membership.objects.filter(tenant=tenant, role=Role.OWNER).exclude(pk=excluding.pk).count()
    )


@transaction.atomic
def change_role(*, actor: Any, membership: Membership, role: str) -> Membership:
    """Change a member's role; nobody grants above their own role or demotes the last owner."""
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    actor_role = require_role(actor, membership.tenant, Role.ADMIN)
    if not can_grant(actor_role, role) or not can_grant(actor_role, membership.role):
        raise PermissionDenied("You cannot grant or change a role above your own.")
    demoting_owner = membership.role == Role.OWNER and role != Role.OWNER
    if demoting_owner and not _owners_left(membership.tenant, membership):
        raise ValidationError({"role": "A tenant needs at least one owner."})
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record_event(
        "membership.role",
        actor=actor,
        tenant=membership.tenant,
        obj=membership,
        message=f"{membership.user} role {old} -> {role}",
    )
    return membership


@transaction.atomic
def remove_member(*, actor: Any, membership: Membership) -> None:
    """Remove a member (or leave); their tenant-bound tokens stop working at once."""
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    tenant = membership.tenant
    if membership.user_id != actor.pk:
        actor_role = require_role(actor, tenant, Role.ADMIN)
        if not can_grant(actor_role, membership.role):
            raise PermissionDenied("You cannot remove a member whose role is above your own.")
    if membership.role == Role.OWNER and not _owners_left(tenant, membership):
        raise ValidationError({"role": "A tenant needs at least one owner."})
    tenant.api_tokens.filter(user=membership.user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    record_event(
        "membership.remove", actor=actor, tenant=tenant, obj=membership, message=str(membership)
    )
    membership.delete()


@transaction.atomic
def invite(*, actor: Any, tenant: Tenant, email: str, role: str = Role.MEMBER):
    """Create an invitation; returns (invitation, raw token for the link, shown once)."""
    actor_role = require_role(actor, tenant, Role.ADMIN)
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    if not can_grant(actor_role, role):
        raise PermissionDenied("You cannot invite someone with a role above your own.")
    email = check_invitee(tenant=tenant, email=email)
    raw = Invitation.new_token()
    invitation = Invitation(
        tenant=tenant, email=email, role=role, token_hash=hash_secret(raw), invited_by=actor
    )
    _validated(invitation, exclude=["tenant", "invited_by", "accepted_by"]).save()
    record_event("invitation.create", actor=actor, tenant=tenant, obj=invitation)
    return invitation, raw


def check_invitee(*, tenant: Tenant, email: str) -> str:
    """The normalized address, unless its owner is already a member (invite's check of
    the address, also run on a form refused for its role)."""
    email = get_user_model().objects.normalize_email(email.strip())
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise ValidationError({"email": "This person is already a member of the tenant."})
    return email


# The session remembers the invitation whose link was opened while signed out, by primary
# key only (never the link's token), so that sign-up can open for it when it is closed.
INVITATION_SESSION_KEY = "berth_invitation"


def remember_invitation(session: Any, invitation: Invitation | None) -> None:
    """Remember a pending invitation for sign-up; anything else forgets the last one."""
    if invitation is not None and invitation.is_pending:
        session[INVITATION_SESSION_KEY] = invitation.pk
    else:
        session.pop(INVITATION_SESSION_KEY, None)


def remembered_invitation(session: Any) -> Invitation | None:
    """The remembered invitation while it is still pending (re-read, so a revoke counts)."""
    pk = session.get(INVITATION_SESSION_KEY)
    if not isinstance(pk, int):
        return None
    invitation = Invitation.objects.select_related("tenant").filter(pk=pk).first()
    return invitation if invitation is not None and invitation.is_pending else None


def find_invitation(raw_token: str) -> Invitation | None:
    if not raw_token or len(raw_token) > 100:
        return None
    return (
        Invitation.objects.select_related("tenant")
        .filter(token_hash=hash_secret(raw_token))
        .first()
    )


@transaction.atomic
def accept_invitation(*, user: Any, raw_token: str) -> Membership:
    """Join the tenant: the link works once, before it expires, for the invited address."""
    found = find_invitation(raw_token)
    if found is None:
        raise ValidationError({"token": "This invitation link is not valid."})
    invitation = Invitation.objects.select_for_update().get(pk=found.pk)
    if invitation.status != "pending":
        raise ValidationError({"token": f"This invitation is {invitation.status}."})
    if not user.email or user.email.lower() != invitation.email.lower():
        raise ValidationError({"email": "This invitation was sent to another e-mail address."})
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                tenant=invitation.tenant, user=user, role=invitation.role
            )
    except IntegrityError:
        raise ValidationError({"token": "You are already a member of this tenant."}) from None
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_event("invitation.accept", actor=user, tenant=invitation.tenant, obj=membership)
    return membership


@transaction.atomic
def revoke_invitation(*, actor: Any, invitation: Invitation) -> Invitation:
    require_role(actor, invitation.tenant, Role.ADMIN)
    if invitation.status != "pending":
        raise ValidationError({"invitation": f"This invitation is already {invitation.status}."})
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    record_event("invitation.revoke", actor=actor, tenant=invitation.tenant, obj=invitation)
    return invitation
