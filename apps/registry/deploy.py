"""Deploying from Berth's registry: a per-pull credential, never a login left on an engine."""

from __future__ import annotations

from django.conf import settings

from apps.registry.tokens import deployer_credentials


def registry_host(image: str) -> str | None:
    """The registry part of an image reference (`127.0.0.1:5000/acme/web:1` ->
    `127.0.0.1:5000`); None for Docker Hub style names (`nginx`, `library/redis`)."""
    first, slash, _ = image.partition("/")
    if not slash:
        return None
    if "." in first or ":" in first or first == "localhost":
        return first
    return None


def registry_pull_auth(image: str, tenant_slug: str) -> dict[str, str] | None:
    """The engine `auth_config` for pulling `image` on behalf of `tenant_slug`, when the
    image lives in Berth's registry; None for any other registry (pulled as before)."""
    if registry_host(image) != settings.BERTH_REGISTRY_ADDR:
        return None
    username, password = deployer_credentials(tenant_slug)
    return {
        "username": username,
        "password": password,
        "serveraddress": settings.BERTH_REGISTRY_ADDR,
    }
