"""The token endpoint's logic: a principal + requested scopes -> a signed token.

Views stay thin; this is also what the benchmark and the tests call directly. Policy
lives in scopes.py; `issue_token` only signs what it is given, so internal callers
(browsing and usage through the registry API) get tokens the same way.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import jwt
from django.conf import settings
from django.db.models import Exists, OuterRef

from apps.registry.models import Repository
from apps.registry.token.keys import signing_key
from apps.registry.token.scopes import (
    PULL,
    PUSH,
    Principal,
    RepositoryFacts,
    Scope,
    allowed_repository_actions,
    grant,
    split_repository,
)
from apps.tenants.models import Tenant


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


class TokenRefusedError(Exception):
    """A request the registry client should see as `denied: <message>` (HTTP 403)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class _FactsCache:
    """Database facts about repository names, read once per request (one query per
    namespace: the tenant with its repository's visibility)."""

    seen: dict[str, RepositoryFacts] = field(default_factory=dict)
    tenants: dict[str, Tenant | None] = field(default_factory=dict)

    def __call__(self, name: str) -> RepositoryFacts:
        if name not in self.seen:
            self.seen[name] = self._facts(name)
        return self.seen[name]

    def _facts(self, name: str) -> RepositoryFacts:
        parts = split_repository(name)
        if parts is None:
            return RepositoryFacts(tenant_exists=False)
        namespace, path = parts
        public = Repository.objects.filter(
            tenant=OuterRef("pk"), name=path, visibility=Repository.Visibility.PUBLIC
        )
        tenant = Tenant.objects.filter(slug=namespace).annotate(public=Exists(public)).first()
        self.tenants.setdefault(namespace, tenant)
        if tenant is None:
            return RepositoryFacts(tenant_exists=False)
        return RepositoryFacts(tenant_exists=True, public=tenant.public)

    def tenant(self, slug: str) -> Tenant | None:
        if slug not in self.tenants:
            self.tenants[slug] = Tenant.objects.filter(slug=slug).first()
        return self.tenants[slug]


def repository_facts(name: str) -> RepositoryFacts:
    return _FactsCache()(name)


def _quota_refusal(access: list[dict], facts: _FactsCache) -> str | None:
    """The quota message when a granted push would go to a tenant already over quota."""
    try:
        from apps.registry.quota import can_push
    except ImportError:  # quotas not installed
        return None
    pushes = {
        entry["name"].partition("/")[0]
        for entry in access
        if entry["type"] == "repository" and PUSH in entry["actions"]
    }
    for slug in sorted(pushes):
        tenant = facts.tenant(slug)
        if tenant is not None:
            ok, message = can_push(tenant)
            if not ok:
                return message
    return None


def deployer_may_pull(tenant_slug: str, repository: str) -> bool:
    """Whether the token service would grant `tenant_slug`'s deployer credential pull on
    `repository` ("acme/web"): what a deployment checks itself, because an engine serves
    a pull by digest from its own cache without asking the registry."""
    principal = Principal(kind="deployer", name=f"deployer:{tenant_slug}", tenant=tenant_slug)
    allowed = allowed_repository_actions(
        principal,
        repository,
        repository_facts(repository),
        anonymous_pull=settings.BERTH_REGISTRY_ANONYMOUS_PULL,
    )
    return PULL in allowed


def token_for(principal: Principal, scopes: list[Scope], service: str) -> IssuedToken:
    """Grant (asked ∩ allowed) and sign; refuse a push over the tenant's storage quota."""
    facts = _FactsCache()
    access = grant(principal, scopes, facts, anonymous_pull=settings.BERTH_REGISTRY_ANONYMOUS_PULL)
    refusal = _quota_refusal(access, facts)
    if refusal:
        raise TokenRefusedError(refusal)
    return issue_token(subject=principal.name, access=access, audience=service)
