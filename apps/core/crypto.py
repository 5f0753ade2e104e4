"""Encryption at rest for values Berth must read back (private keys, stored secrets).

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from SECRET_KEY by HKDF, one key
per purpose (`info`), so the Django signing key itself is never used as an encryption
key and a value encrypted for one purpose does not decrypt as another's. A database
dump alone does not hand out the values; changing SECRET_KEY makes them unreadable
(`decrypt` raises cryptography.fernet.InvalidToken).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@lru_cache(maxsize=8)
def _fernet_for(secret_key: str, info: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet(info: bytes) -> Fernet:
    """The key for one purpose (`info`), derived from the current SECRET_KEY."""
    return _fernet_for(settings.SECRET_KEY, info)


def encrypt(plain: bytes, info: bytes) -> str:
    return fernet(info).encrypt(plain).decode()


def decrypt(token: str, info: bytes) -> bytes:
    """Raises cryptography.fernet.InvalidToken when SECRET_KEY changed since."""
    return fernet(info).decrypt(token.encode())
