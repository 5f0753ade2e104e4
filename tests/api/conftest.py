"""API test helpers: clients that authenticate with a real Bearer token or a session."""

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as token_services


def bearer_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api_as():
    """api_as(user, tenant=None, read_only=False) -> (APIClient with a fresh token, token)."""

    def make(user, tenant=None, read_only=False, expires_days=None):
        token, raw = token_services.create_token(
            actor=user,
            name="test",
            tenant=tenant,
            read_only=read_only,
            expires_days=expires_days,
        )
        return bearer_client(raw), token

    return make


@pytest.fixture
def session_api():
    """An APIClient logged in with a session (as the browser would be)."""

    def make(user) -> APIClient:
        client = APIClient()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


def results(response) -> list:
    """The rows of a (paginated) list answer."""
    assert response.status_code == 200, response.content
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The fixtures make several users per test; PBKDF2 would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
