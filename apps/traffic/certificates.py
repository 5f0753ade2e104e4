"""Certificates for the frontier's HTTPS listener, and ACME HTTP-01 challenges.

The frontier's renderer asks this module for two things only:
`certificate_files()` (host name -> PEM file with certificate chain and key, written
under BERTH_FRONTIER_DIR) and `acme_challenges()` (token -> key authorisation, answered
by the frontier at /.well-known/acme-challenge/<token>).
"""

from __future__ import annotations


def certificate_files() -> dict[str, str]:
    """Host name -> path of its PEM bundle for HAProxy's crt-list."""
    return {}


def acme_challenges() -> dict[str, str]:
    """ACME HTTP-01 tokens waiting to be answered -> their key authorisations."""
    return {}
