"""Health banners name the broken service but never a credential."""

from __future__ import annotations

import socket

import pytest
from django.urls import reverse

from apps.hosts.models import Host
from apps.portal import health
from tests.conftest import login

REDIS_PASSWORD = "r3dis-Pass-77"
ENGINE_PASSWORD = "hunter22-engine"
API_TOKEN = "berth_Q2xAbCdEfGh1234567890ijKLmnOPqrstUV_-xyz"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_cached_banners():
    health._CACHE.clear()
    yield
    health._CACHE.clear()


@pytest.fixture
def dead_redis_with_password(settings):
    port = closed_port()
    settings.REDIS_URL = f"redis://berth:{REDIS_PASSWORD}@127.0.0.1:{port}/3"
    return port


def test_redis_banner_shows_where_but_not_the_password(dead_redis_with_password):
    message = health.redis_error()

    assert message is not None
    assert REDIS_PASSWORD not in message and "berth:" not in message
    assert f"redis://***@127.0.0.1:{dead_redis_with_password}/3" in message


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"ssh://deploy:{ENGINE_PASSWORD}@10.0.0.5:22 refused", ENGINE_PASSWORD),
        (f"tcp://admin:{ENGINE_PASSWORD}@[::1]:2376 timed out", ENGINE_PASSWORD),
        (f"GET https://10.0.0.5/v2/?access_token={ENGINE_PASSWORD}&x=1 failed", ENGINE_PASSWORD),
        (f"postgres://berth:{ENGINE_PASSWORD}@db/berth down", ENGINE_PASSWORD),
        (f"login with {API_TOKEN} refused", API_TOKEN),
        ("registry secret=Zm9vYmFyYmF6cXV4 rejected", "Zm9vYmFyYmF6cXV4"),
    ],
)
def test_redact_removes_credentials(text, secret):
    redacted = health.redact(text)
    assert secret not in redacted
    assert "***" in redacted


def test_redact_hides_secret_settings(settings):
    settings.EMAIL_HOST_PASSWORD = "mail-pass-123"
    settings.AUTH_LDAP_BIND_PASSWORD = "bind-pass-456"
    text = health.redact("smtp said mail-pass-123; ldap said bind-pass-456")
    assert "mail-pass-123" not in text and "bind-pass-456" not in text


def test_redact_keeps_ordinary_messages():
    text = (
        "Host local is unreachable: Error 111 connecting to 127.0.0.1:6379. Connection "
        "refused; unauthorized: authentication required; image sha256:"
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    )
    assert health.redact(text) == text


@pytest.mark.django_db
def test_host_banner_on_the_page_carries_no_credentials(client, superuser):
    Host.objects.create(
        name="edge",
        endpoint=f"ssh://deploy:{ENGINE_PASSWORD}@10.0.0.5",
        state=Host.State.UNREACHABLE,
        last_error=f"cannot reach ssh://deploy:{ENGINE_PASSWORD}@10.0.0.5:22 with {API_TOKEN}",
    )
    login(client, superuser)

    page = client.get(reverse("portal:dashboard")).content.decode()

    assert "Host edge is unreachable" in page
    assert ENGINE_PASSWORD not in page and API_TOKEN not in page
    assert "ssh://***@10.0.0.5:22" in page
