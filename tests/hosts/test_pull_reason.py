"""The engine's pull errors read as what to do about them, not as Go's transport text."""

from __future__ import annotations

import pytest

from apps.hosts.engine.errors import pull_reason


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            "the registry at 127.0.0.1:1 cannot be reached (connection refused)",
        ),
        (
            'Get "https://reg.example.test/v2/": dial tcp: lookup reg.example.test on '
            "127.0.0.53:53: no such host",
            "the registry host name reg.example.test does not resolve",
        ),
        (
            'Get "https://10.0.0.9:5000/v2/": http: server gave HTTP response to HTTPS client',
            "the registry at 10.0.0.9:5000 speaks plain HTTP but the engine asked over HTTPS "
            "(list it in the engine's insecure-registries)",
        ),
        (
            "manifest for 127.0.0.1:5000/library/web:9 not found: manifest unknown: "
            "manifest unknown",
            "the registry has no such image or tag",
        ),
        (
            'Head "http://127.0.0.1:5000/v2/acme/web/manifests/1": unauthorized: '
            "authentication required",
            "the registry refused the pull (no credentials, or no right to it)",
        ),
        ("something new the engine says", "something new the engine says"),
    ],
)
def test_pull_reason(detail, expected):
    assert pull_reason(detail) == expected
