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
        """A user sees their own tokens only; platform admins see all of them."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_superuser and token is None:
            return self
        return self.filter(user=user)

    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for the API and websockets, acting for its user.

    Its rights are the user's, narrowed to one tenant when `tenant` is set and to reads
    when `read_only` is set; membership is checked on every request, so removing a
    member disables their tokens at once.
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
    def scope(self) -> str:
        return "read" if self.read_only else "write"


def find_token(raw_key: str) -> ApiToken | None:
    """The usable token for a raw key, or None; compares hashes, never raw keys."""
    if not raw_key or not raw_key.startswith(TOKEN_PREFIX) or len(raw_key) > 200:
        return None
    return (
        ApiToken.objects.usable()
        .select_related("user", "tenant")
        .filter(key_hash=hash_secret(raw_key))
        .first()
    )


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
