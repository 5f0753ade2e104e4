"""Certificates the frontier serves, and the ACME state behind them.

One Certificate per host name (the host name is unique across tenants, as its
HostnameClaim is). The private key is stored encrypted (Fernet, keyed from SECRET_KEY):
a database dump alone does not hand out the keys of every tenant's sites.
"""

from __future__ import annotations

from django.db import models

from apps.core import crypto
from apps.core.tenancy import TenantOwnedQuerySet

#: The purpose the private keys' encryption key is derived for (apps.core.crypto).
_KEY_PURPOSE = b"berth traffic private keys"


def encrypt_secret(plain: str) -> str:
    return crypto.encrypt(plain.encode(), _KEY_PURPOSE)


def decrypt_secret(token: str) -> str:
    """Raises cryptography.fernet.InvalidToken when SECRET_KEY changed since."""
    return crypto.decrypt(token, _KEY_PURPOSE).decode()


class Certificate(models.Model):
    """The certificate and key the frontier presents for one host name.

    While a new one is being issued (ACME, renewal) the current chain and key stay in
    place and keep serving; `state` says how the last attempt went and `error` why it
    failed. `issuing_since` is the lease of the worker issuing it, so two workers never
    run the same order at once.
    """

    class Kind(models.TextChoices):
        SELF_SIGNED = "self-signed", "Self-signed"
        UPLOADED = "uploaded", "Uploaded"
        ACME = "acme", "ACME"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        VALID = "valid", "Valid"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="certificates"
    )
    hostname = models.CharField(max_length=253, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    chain_pem = models.TextField(blank=True)
    key_encrypted = models.TextField(blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    issuing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def key_pem(self) -> str:
        """The private key in clear (PEM); never serialised, only written for HAProxy."""
        return decrypt_secret(self.key_encrypted) if self.key_encrypted else ""

    def set_key(self, key_pem: str) -> None:
        self.key_encrypted = encrypt_secret(key_pem)


class AcmeAccount(models.Model):
    """Berth's account at an ACME directory: one key per directory URL, reused for every
    order (Let's Encrypt limits how many accounts an address may create)."""

    directory = models.URLField(max_length=500, unique=True)
    email = models.CharField(max_length=254, blank=True)
    key_encrypted = models.TextField()
    uri = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.directory


class AcmeChallenge(models.Model):
    """An HTTP-01 challenge waiting for the CA: the frontier answers
    /.well-known/acme-challenge/<token> with the key authorisation while the row exists."""

    certificate = models.ForeignKey(
        Certificate, on_delete=models.CASCADE, related_name="challenges"
    )
    token = models.CharField(max_length=200, unique=True)
    key_authorization = models.CharField(max_length=400)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.token
