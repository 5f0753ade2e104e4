"""Maps BERTH_GITHUB_*, BERTH_GITLAB_* and BERTH_OIDC_* variables to allauth providers.

A provider is switched on by its client id; allauth 65 reads the apps from
SOCIALACCOUNT_PROVIDERS["<provider>"]["APPS"], so no database rows are needed.
Kept free of models so that paas/settings.py can import it while settings load.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured


def _github(env: Mapping[str, str]) -> dict:
    return {
        "APPS": [
            {
                "client_id": env["BERTH_GITHUB_CLIENT_ID"].strip(),
                "secret": env.get("BERTH_GITHUB_SECRET", ""),
            }
        ],
        "SCOPE": ["read:user", "user:email"],
    }


def _gitlab(env: Mapping[str, str]) -> dict:
    url = (env.get("BERTH_GITLAB_URL", "").strip() or "https://gitlab.com").rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ImproperlyConfigured("BERTH_GITLAB_URL: use https://your.gitlab.host.")
    return {
        "APPS": [
            {
                "client_id": env["BERTH_GITLAB_CLIENT_ID"].strip(),
                "secret": env.get("BERTH_GITLAB_SECRET", ""),
                "settings": {"gitlab_url": url},
            }
        ],
        "SCOPE": ["read_user"],
    }


def _oidc(env: Mapping[str, str]) -> dict:
    server_url = env.get("BERTH_OIDC_SERVER_URL", "").strip().rstrip("/")
    if not server_url.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            "BERTH_OIDC_SERVER_URL: set the issuer URL (https://...) "
            "when BERTH_OIDC_CLIENT_ID is set."
        )
    provider_id = env.get("BERTH_OIDC_PROVIDER_ID", "").strip() or "oidc"
    if not provider_id.replace("-", "").replace("_", "").isalnum():
        raise ImproperlyConfigured("BERTH_OIDC_PROVIDER_ID: use letters, digits, - and _.")
    return {
        "APPS": [
            {
                "provider_id": provider_id,
                "name": env.get("BERTH_OIDC_NAME", "").strip() or "Single sign-on",
                "client_id": env["BERTH_OIDC_CLIENT_ID"].strip(),
                "secret": env.get("BERTH_OIDC_SECRET", ""),
                "settings": {"server_url": server_url},
            }
        ],
        "SCOPE": ["openid", "profile", "email"],
    }


def socialaccount_providers_from_env(env: Mapping[str, str]) -> dict[str, dict]:
    """SOCIALACCOUNT_PROVIDERS with one entry per provider whose client id is set."""
    builders = {
        "github": ("BERTH_GITHUB_CLIENT_ID", _github),
        "gitlab": ("BERTH_GITLAB_CLIENT_ID", _gitlab),
        "openid_connect": ("BERTH_OIDC_CLIENT_ID", _oidc),
    }
    return {
        provider: build(env)
        for provider, (variable, build) in builders.items()
        if env.get(variable, "").strip()
    }
