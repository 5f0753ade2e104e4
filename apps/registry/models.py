"""The private registry's index: repositories, robot accounts, push/pull events, quotas.

Berth is the index (who may do what, statistics); Debian's docker-registry stores the
blobs. Every row belongs to a tenant and is filtered through `visible_to`.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from apps.core.tenancy import TenantOwnedQuerySet

# A repository path under the tenant namespace ("web", "team/web"): the distribution
# grammar of path components, lowercase, separated by "/".
repository_name_validator = RegexValidator(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
    "Use lowercase letters, digits and separators (. _ -), path parts separated by '/'.",
)
robot_name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)
MAX_ROBOT_DAYS = 730
MAX_REPOSITORIES = 50


def clean_robot_repositories(repositories: Iterable[str] | str | None) -> list[str]:
    """A robot's repositories: names under the tenant namespace, without the `<tenant>/`
    prefix; [] means all of them."""
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


def robot_expiry(expires_days: int | None, expires_at: datetime | None) -> datetime | None:
    """When a new robot expires: a moment in the future, or 1 to MAX_ROBOT_DAYS days."""
    if expires_at is not None:
        if expires_at <= timezone.now():
            raise ValidationError({"expires_at": "Choose a moment in the future."})
        return expires_at
    if expires_days is None:
        return None
    if not 1 <= int(expires_days) <= MAX_ROBOT_DAYS:
        raise ValidationError({"expires_days": f"Choose between 1 and {MAX_ROBOT_DAYS} days."})
    return timezone.now() + timedelta(days=int(expires_days))


def validated_robot_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the robot a name."})
    try:
        robot_name_validator(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc
    return name


class RegistryQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "tenant"


class RepositoryQuerySet(RegistryQuerySet):
    def browsable_by(self, user, token=None):
        """What `user` may look at: the repositories of its tenants (`visible_to`) and,
        once signed in, every public one, which any signed-in user may pull anyway.
        Changes still go through `visible_to` with the role they need."""
        own = self.visible_to(user, token=token)
        if not (user and user.is_authenticated and user.is_active):
            return own
        return own | self.filter(visibility=Repository.Visibility.PUBLIC)


class Repository(models.Model):
    """An image repository `<tenant-slug>/<name>`; private unless made public."""

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        PUBLIC = "public", "Public"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="repositories"
    )
    name = models.CharField(max_length=200, validators=[repository_name_validator])
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    size_bytes = models.BigIntegerField(default=0)
    pull_count = models.PositiveBigIntegerField(default=0)
    push_count = models.PositiveBigIntegerField(default=0)

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        verbose_name_plural = "repositories"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_repository_name"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        """The path the docker client uses after the registry host: `acme/web`."""
        return f"{self.tenant.slug}/{self.name}"

    @property
    def is_public(self) -> bool:
        return self.visibility == self.Visibility.PUBLIC


class RobotAccount(models.Model):
    """A CI credential of a tenant: `robot$<tenant>+<name>` with a hashed secret."""

    class Scope(models.TextChoices):
        PULL = "pull", "Pull"
        PUSH = "push", "Push and pull"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="robots")
    name = models.CharField(max_length=40, validators=[robot_name_validator])
    description = models.CharField(max_length=300, blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.PULL)
    # Repository names under the tenant namespace ("web"); empty means all of them.
    repositories = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = RegistryQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_robot_name"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def username(self) -> str:
        return f"robot${self.tenant.slug}+{self.name}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"


class RegistryEvent(models.Model):
    """One push, pull or delete reported by the registry's notifications."""

    class Action(models.TextChoices):
        PUSH = "push", "Push"
        PULL = "pull", "Pull"
        DELETE = "delete", "Delete"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="registry_events"
    )
    repository = models.ForeignKey(
        Repository, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    tag = models.CharField(max_length=128, blank=True)
    digest = models.CharField(max_length=100, blank=True)
    size = models.BigIntegerField(default=0)
    actor = models.CharField(max_length=200, blank=True)
    # The notification's event id: unique, so a replayed notification is not counted twice.
    event_id = models.CharField(max_length=100, unique=True)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    source_addr = models.CharField(max_length=100, blank=True)
    # What the event's target was: a manifest (an image pulled or pushed) or a layer blob
    # (bytes transferred). Pull and push counts are manifests only.
    media_type = models.CharField(max_length=200, blank=True)
    # One image pull or push in the statistics (a manifest requested by tag, or by digest
    # without a by-tag lookup just before); existence checks and layers are not counted.
    counted = models.BooleanField(default=False)
    # Bytes that really crossed the wire (a HEAD request moves none).
    transferred = models.BigIntegerField(default=0)

    objects = RegistryQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["tenant", "action", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.action} {self.repository or '?'}:{self.tag} by {self.actor}"


class TenantRegistryQuota(models.Model):
    """Storage allowed and used by a tenant's namespace; 0 quota means unlimited."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="registry_quota"
    )
    quota_bytes = models.BigIntegerField(default=0)
    used_bytes = models.BigIntegerField(default=0)
    # digest -> size of every blob the tenant's tags reference, as of the last usage
    # walk plus the pushes the gate admitted since: what a new push does not add again.
    blob_sizes = models.JSONField(default=dict, blank=True)
    # Pulls of one repository in one day above which the tenant is alerted; 0 means never.
    pull_alert_threshold = models.PositiveIntegerField(default=0)

    objects = RegistryQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.tenant}: {self.used_bytes}/{self.quota_bytes or '∞'}"
