"""Signed registry tokens (Docker registry token specification, ES256) and Berth's own
short-lived pull credential for deployments.

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


def deployer_credentials(tenant_slug: str) -> tuple[str, str]:
    """A (username, password) pair the token service accepts for pull in `tenant_slug`'s
    namespace (and public repositories) for five minutes: handed to the engine for one
    pull, so no login is ever left on it."""
    password = signing.dumps(
        {"t": tenant_slug, "n": secrets.token_hex(8)}, salt=DEPLOYER_SALT, compress=False
    )
    return DEPLOYER_PREFIX + tenant_slug, password


def check_deployer(username: str, password: str) -> str | None:
    """The tenant slug when the deployer credential is genuine and fresh, else None."""
    if not username.startswith(DEPLOYER_PREFIX) or not password or len(password) > 500:
        return None
    try:
        data = signing.loads(password, salt=DEPLOYER_SALT, max_age=DEPLOYER_SECONDS)
    except signing.BadSignature:
        return None
    tenant = data.get("t") if isinstance(data, dict) else None
    return tenant if tenant and username == DEPLOYER_PREFIX + tenant else None
