"""Signed registry tokens (Docker registry token specification, ES256) and Berth's own
short-lived credentials: the deployer's (pull, for deployments) and the publisher's
(push, for the platform's own images).

Policy lives in scopes.py; this module only signs what it is given, so internal callers
(garbage collection, browsing through the registry API) get tokens the same way.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt
from django.conf import settings
from django.core import signing

from apps.registry.keys import signing_key

DEPLOYER_PREFIX = "berth-deployer$"
DEPLOYER_SALT = "berth.registry.deployer"
DEPLOYER_SECONDS = 300
PUBLISHER_PREFIX = "berth-publisher$"
PUBLISHER_SALT = "berth.registry.publisher"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict
    expires_in: int

    def as_response(self) -> dict:
        """The token endpoint's JSON body (both names, for old and new clients)."""
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.claims["iat"]))
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": issued,
        }


def issue_token(
    *,
    subject: str,
    access: list[dict],
    audience: str | None = None,
    ttl: int | None = None,
) -> IssuedToken:
    """Sign a token for `subject` carrying exactly `access`.

    `audience` defaults to the configured service name; `ttl` is capped at
    BERTH_REGISTRY_TOKEN_SECONDS (5 minutes at most).
    """
    limit = settings.BERTH_REGISTRY_TOKEN_SECONDS
    expires_in = max(1, min(ttl or limit, limit))
    now = int(time.time())
    claims = {
        "iss": settings.BERTH_REGISTRY_ISSUER,
        "sub": subject,
        "aud": audience or settings.BERTH_REGISTRY_SERVICE,
        "exp": now + expires_in,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(18),
        "access": access,
    }
    key = signing_key()
    token = jwt.encode(
        claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "JWT"}
    )
    return IssuedToken(token=token, claims=claims, expires_in=expires_in)


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
