"""Tenants (organisations), their members, environments and invitations."""

import hashlib
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from apps.core.roles import Role
from apps.core.tenancy import EnvironmentQuerySet, TenantOwnedQuerySet, TenantQuerySet

slug_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
    "Use 1-40 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)

DEFAULT_ENVIRONMENTS = ("dev", "staging", "prod")

# The platform's own tenant: its registry namespace holds the images Berth publishes
# (the demo images of the catalog), public to every tenant, like Harbor's "library".
PLATFORM_TENANT = "library"

# Words that name pages under /tenants/ and would hide a tenant with that slug, and the
# platform's namespace, which only `ensure_platform_tenant` creates.
RESERVED_SLUGS = frozenset(
    {"new", "add", "create", "edit", "delete", "switch", "api", "admin", PLATFORM_TENANT}
)


def not_reserved(value: str) -> None:
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved; choose another slug.")


class Tenant(models.Model):
    """An organisation: the unit of isolation for stacks, images and people."""

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator, not_reserved])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


def quota_default(key: str):
    """The value a new tenant's quota starts with (settings.BERTH_TENANT_QUOTA_DEFAULTS)."""
    return settings.BERTH_TENANT_QUOTA_DEFAULTS.get(key, 0)


class TenantQuota(models.Model):
    """What a tenant's stacks may hold at most, so one tenant cannot starve the others.

    Set by platform admins only (apps.tenants.services.set_quotas); 0 means unlimited, as
    for registry storage, which keeps its own row (apps.registry TenantRegistryQuota).
    Counted from the desired state of every stack not being removed (stopped ones too:
    starting them needs no check), and checked by the deployments service layer before
    a deploy, redeploy, upgrade, rollback or scale is written (apps/deployments/quotas.py).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="quota")
    stacks = models.PositiveIntegerField(
        default=partial(quota_default, "stacks"), help_text="Stacks (0: unlimited)"
    )
    containers = models.PositiveIntegerField(
        default=partial(quota_default, "containers"),
        help_text="Containers of all stacks, every replica counted (0: unlimited)",
    )
    memory = models.PositiveBigIntegerField(
        default=partial(quota_default, "memory"),
        help_text="Bytes: the memory limits of all containers added up (0: unlimited)",
    )
    cpus = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        default=partial(quota_default, "cpus"),
        validators=[MinValueValidator(0)],
        help_text="CPUs of all containers added up; every service must then set cpus "
        "(0: unlimited)",
    )
    pids = models.PositiveIntegerField(
        default=partial(quota_default, "pids"),
        help_text="Processes per container, the most a compose file may ask (0: unlimited)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Quota of {self.tenant}"

    @property
    def is_unlimited(self) -> bool:
        return not any((self.stacks, self.containers, self.memory, self.cpus, self.pids))


class Membership(models.Model):
    """A user's role in a tenant; the role bounds what they and their tokens may do."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Who manages this membership: "ldap" ones follow the directory's groups at every
    # LDAP login (apps/accounts/ldap.py) and are removed when the group goes; "local"
    # ones (created here, by invitation or by hand) are never touched by the directory.
    source = models.CharField(
        max_length=10, choices=[("local", "Local"), ("ldap", "LDAP directory")], default="local"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class Environment(models.Model):
    """A tenant's dev, staging, prod...: its own networks, policy defaults and hosts."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="environments")
    slug = models.CharField(max_length=40, validators=[slug_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    hosts = models.ManyToManyField("hosts.Host", blank=True, related_name="environments")
    # Compose policy and container hardening defaults (changed by platform admins only).
    policy_exceptions = models.JSONField(
        default=list, blank=True, help_text="Names of compose policy rules allowed here"
    )
    publish_interface = models.GenericIPAddressField(
        default="127.0.0.1", help_text="Host interface that published ports bind to"
    )
    default_memory_limit = models.BigIntegerField(default=512 * 1024 * 1024)
    default_pids_limit = models.PositiveIntegerField(default=512)
    log_max_size = models.CharField(max_length=10, default="10m")
    log_max_files = models.PositiveIntegerField(default=3)
    record_shell_transcripts = models.BooleanField(
        default=False, help_text="Save the output of every shell session for audit."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "created_at", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="unique_environment_slug"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def default_invitation_expiry():
    return timezone.now() + timedelta(days=settings.BERTH_INVITATION_DAYS)


class Invitation(models.Model):
    """A single-use, expiring invitation bound to one e-mail address.

    Only the hash of the link's token is stored, so a database leak reveals no links.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=default_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.tenant}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def is_pending(self) -> bool:
        return not self.accepted_at and not self.revoked_at and self.expires_at > timezone.now()

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class RetiredTenant(models.Model):
    """A deleted tenant whose engine objects and registry images are being removed.

    The tenant's rows are gone the moment it is deleted (its stacks cascade), so what it
    ran is found by the ids in engine labels (`io.berth.tenant-id`), never by its slug:
    a new tenant taking the slug gets new ids and sees none of it. Its containers are
    stopped at once, its registry namespace emptied, and its containers, networks and
    volumes removed after `remove_after` (apps/deployments/retirement.py). The slug stays
    taken until the registry namespace is empty, since image names carry slugs.
    """

    tenant_id = models.PositiveBigIntegerField(unique=True)
    slug = models.CharField(max_length=40, db_index=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    remove_after = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    registry_cleared_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"{self.slug} (tenant {self.tenant_id}, deleted)"

    @property
    def done(self) -> bool:
        return bool(self.stopped_at and self.registry_cleared_at and self.removed_at)
