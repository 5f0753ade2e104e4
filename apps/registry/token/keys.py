"""The token-signing key: EC P-256, generated once per installation, never in the repository.

The registry trusts tokens whose header `kid` names a key in its `rootcertbundle`.
Distribution 2.8 computes that name the libtrust way (see `libtrust_kid`), so the key
lives beside a self-signed certificate that the rendered config.yml points at.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

KEY_FILE = "token-signing.key"
CERT_FILE = "token-signing.crt"


def registry_state_dir() -> Path:
    """BERTH_STATE_DIR/registry/, private to the Berth user."""
    path = Path(settings.BERTH_STATE_DIR) / "registry"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600 unless it exists; False when another process won."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id libtrust (and so the registry) derives from a public key.

    SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 without padding,
    in 12 groups of 4 characters joined by ':'.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def _self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth registry token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_signing_key() -> tuple[Path, Path]:
    """Generate the key and its certificate on first use; return their paths."""
    folder = registry_state_dir()
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(key_path, pem)
    if not cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        write_private(cert_path, _self_signed(key))
    return key_path, cert_path


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    kid: str
    cert_path: Path


@lru_cache(maxsize=4)
def _load(key_path: str, mtime_ns: int) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC key")
    return key, libtrust_kid(key.public_key())


def signing_key() -> SigningKey:
    """The installation's key (cached per file version, so a rotated key is picked up)."""
    key_path, cert_path = ensure_signing_key()
    key, kid = _load(str(key_path), key_path.stat().st_mtime_ns)
    return SigningKey(private_key=key, kid=kid, cert_path=cert_path)
