"""Personal API tokens (shown once, stored hashed, scoped, expiring and revocable), and
the marker of accounts whose password the LDAP directory owns."""

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.tenants.models import hash_secret

TOKEN_PREFIX = "berth_"


class ApiTokenQuerySet(models.QuerySet):
    def visible_to(self, user, min_role: str = "viewer", token=None):
        """A user sees their own tokens only; platform admins see all of them.

        A tenant-bound token sees only the tokens bound to its own tenant, so it can
        neither list nor revoke what the user holds for other tenants.
        """
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser and token is None:
            return self
        mine = self.filter(user=user)
        if token is not None and token.tenant_id:
            mine = mine.filter(tenant_id=token.tenant_id)
        return mine

    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for the API and websockets, acting for its user.

    Its rights are the user's, narrowed to one tenant when `tenant` is set and to reads
    when `read_only` is set; membership is checked on every request, so removing a
    member disables their tokens at once. A tenant-bound token acts with the user's
    role in that tenant even when the user is a platform admin (see `acting_user`).
    A token minted by another token (`parent`) is no stronger and lives no longer: it
    stops working when its parent is revoked or expires.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    read_only = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        editable=False,
        help_text="The token that created this one over the API, if any.",
    )
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_key() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(30)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def scope(self) -> str:
        return "read" if self.read_only else "write"


# Flags that make a user a platform admin; a tenant-bound token never carries them.
PLATFORM_FLAGS = ("is_superuser", "is_staff")
MAX_PARENT_DEPTH = 20


def _parents_usable(token: ApiToken) -> bool:
    """Every token up the chain that minted this one is still usable."""
    parent_id, depth = token.parent_id, 0
    while parent_id is not None:
        depth += 1
        parent = ApiToken.objects.filter(pk=parent_id).only("parent", "revoked_at", "expires_at")
        parent = parent.first()
        if parent is None or not parent.is_usable or depth > MAX_PARENT_DEPTH:
            return False
        parent_id = parent.parent_id
    return True


def acting_user(token: ApiToken) -> Any:
    """The user as this token acts: a tenant-bound token of a platform admin carries no
    platform flags, so every check (querysets, services, policy exceptions, admin-only
    endpoints) sees the user's role in that tenant only.

    The flags are cleared on this in-memory instance; a save through it writes every
    other field and never the cleared flags, so the account itself stays an admin.
    """
    user = token.user
    if not token.tenant_id or not any(getattr(user, flag) for flag in PLATFORM_FLAGS):
        return user
    for flag in PLATFORM_FLAGS:
        setattr(user, flag, False)
    model = type(user)

    def save_without_platform_flags(*args, update_fields=None, **kwargs):
        names = update_fields or [f.name for f in model._meta.concrete_fields if not f.primary_key]
        names = [name for name in names if name not in PLATFORM_FLAGS]
        model.save(user, *args, update_fields=names, **kwargs)

    def refresh_keeping_flags_cleared(*args, **kwargs):
        model.refresh_from_db(user, *args, **kwargs)
        for flag in PLATFORM_FLAGS:
            setattr(user, flag, False)

    user.save = save_without_platform_flags
    user.refresh_from_db = refresh_keeping_flags_cleared
    user.token_tenant_id = token.tenant_id
    return user


def find_token(raw_key: str) -> ApiToken | None:
    """The usable token for a raw key, or None; compares hashes, never raw keys.

    Its `user` is the acting user (see `acting_user`).
    """
    if not raw_key or not raw_key.startswith(TOKEN_PREFIX) or len(raw_key) > 200:
        return None
    # The hash is unique: no ordering to compile (`first()` would add one), one row.
    found = list(
        ApiToken.objects.usable()
        .select_related("user", "tenant")
        .filter(key_hash=hash_secret(raw_key))
        .order_by()[:1]
    )
    token = found[0] if found else None
    if token is None or not _parents_usable(token):
        return None
    token.user = acting_user(token)
    return token


class DirectoryAccount(models.Model):
    """Marks a user whose sign-in and password belong to the LDAP directory.

    Written by BerthLDAPBackend at every LDAP login (apps/accounts/ldap.py). While it
    exists the user has no usable local password: password reset, change and set are
    refused, and a password saved by any other path is discarded (apps/accounts/apps.py).
    Deleting it in the admin hands the account back to local passwords.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="directory_account",
    )
    dn = models.CharField("directory DN", max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField(auto_now=True, help_text="Last LDAP login")

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.dn or str(self.user)


DIRECTORY_PASSWORD_MESSAGE = (
    "Your password is managed by your organisation's LDAP directory. "
    "Change it there; Berth keeps no password of its own for your account."
)


def is_directory_managed(user: Any) -> bool:
    """True when the LDAP directory owns this user's password (see DirectoryAccount)."""
    pk = getattr(user, "pk", None)
    return pk is not None and DirectoryAccount.objects.filter(user_id=pk).exists()


class Preferences(models.Model):
    """A user's display choices. `time_zone` (an IANA name, "" = the browser's zone) is
    the zone every time on the pages is written in; TimeZoneMiddleware activates it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="preferences",
    )
    time_zone = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"
