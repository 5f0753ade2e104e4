"""The websocket origin check: whole origins (scheme, host, port), never host names only."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from channels.testing import WebsocketCommunicator

from apps.accounts.channels_auth import (
    Origin,
    OriginDenier,
    PortalOriginValidator,
    origin_allowed,
    parse_origin,
)

pytestmark = pytest.mark.usefixtures("fresh_cache")


def scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws", **extra):
    headers = [(b"host", host.encode())] if host else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers, "token": None}


@pytest.fixture(autouse=True)
def _portal(settings):
    settings.BERTH_PUBLIC_URL = "https://berth.example.com"
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.corp.example", "http://10.0.0.5:8080"]
    settings.ALLOWED_HOSTS = ["127.0.0.1", "berth.example.com", "localhost"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("http://127.0.0.1:8000", Origin("http", "127.0.0.1", 8000)),
        ("HTTPS://Berth.Example.com", Origin("https", "berth.example.com", 443)),
        ("http://[::1]:8000", Origin("http", "[::1]", 8000)),
        ("https://*.corp.example", Origin("https", "*.corp.example", 443)),
        ("null", None),
        ("file://", None),
        ("ws://127.0.0.1:8000", None),
        ("http://127.0.0.1:8000/path", None),
        ("http://127.0.0.1:99999", None),
        ("http://user@127.0.0.1", None),
        ("", None),
    ],
)
def test_parse_origin(text, parsed):
    assert parse_origin(text) == parsed


def test_same_origin_is_allowed():
    assert origin_allowed(scope("http://127.0.0.1:8000"))


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8080",  # a tenant's container published on another port
        "http://127.0.0.1",  # port 80
        "https://127.0.0.1:8000",  # another scheme
        "http://localhost:8000",  # another host, even an allowed one
        "http://evil.example:8000",
        "null",  # sandboxed frames, file:// pages
        "http://127.0.0.1:8000/",
    ],
)
def test_foreign_origins_are_refused(origin):
    assert not origin_allowed(scope(origin))


def test_configured_origins_are_allowed_with_their_port_and_scheme():
    assert origin_allowed(scope("https://berth.example.com", host="127.0.0.1:8000"))
    assert not origin_allowed(scope("http://berth.example.com", host="127.0.0.1:8000"))
    assert not origin_allowed(scope("https://berth.example.com:8443"))
    assert origin_allowed(scope("http://10.0.0.5:8080"))
    assert not origin_allowed(scope("http://10.0.0.5:8000"))


def test_trusted_origin_wildcards_cover_subdomains_only_on_their_scheme():
    assert origin_allowed(scope("https://berth.corp.example"))
    assert origin_allowed(scope("https://corp.example"))
    assert not origin_allowed(scope("http://berth.corp.example"))
    assert not origin_allowed(scope("https://corp.example.evil"))


def test_a_host_outside_allowed_hosts_is_no_origin_of_ours():
    """DNS rebinding: evil.example resolving to the portal is not same-origin."""
    assert not origin_allowed(scope("http://evil.example:8000", host="evil.example:8000"))


def test_tls_seen_by_the_proxy_counts_as_the_request_scheme():
    proxied = scope("https://localhost", host="localhost", **{"x-forwarded-proto": "https"})
    assert origin_allowed(proxied)
    assert not origin_allowed(scope("https://localhost", host="localhost"))
    assert origin_allowed(scope("https://localhost", host="localhost", scheme="wss"))


def test_missing_origin_only_with_an_api_token():
    assert not origin_allowed(scope(None))
    assert origin_allowed({**scope(None), "token": object()})
    assert not origin_allowed({**scope("http://127.0.0.1:8080"), "token": object()})


def test_a_refused_handshake_listens_on_no_channel_layer(settings):
    """One Redis receive per refused attempt, living until the client goes, would let
    anyone tie up Redis connections with handshakes that never get in."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layers = []

    class Recording(OriginDenier):
        async def __call__(self, scope, receive, send):
            try:
                return await super().__call__(scope, receive, send)
            finally:
                layers.append(self.channel_layer)

    async def scenario():
        communicator = WebsocketCommunicator(
            PortalOriginValidator(None), "/ws/x/", headers=[(b"origin", b"null")]
        )
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    with mock.patch("apps.accounts.channels_auth.OriginDenier", Recording):
        assert asyncio.run(scenario()) is False
    assert layers == [None]
