"""TLS material for TCP engines: written from the Host's PEM strings to private files.

docker-py (through requests and ssl) only reads certificates from files. They live in
BERTH_STATE_DIR/tls/<host id>/ (a Swarm node's own engine: tls/node-<node row id>/), a
0700 folder with 0600 files, rewritten atomically only when the PEM changed, so
concurrent workers never read a half-written key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    client_cert: Path
    client_key: Path
    folder: Path
    temporary: bool = False


def tls_root() -> Path:
    return Path(settings.BERTH_STATE_DIR) / "tls"


def _private_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _write_private(path: Path, content: str) -> Path:
    """Write `content` to `path` (mode 0600) unless it already holds exactly that."""
    data = content.strip().encode() + b"\n"
    try:
        if path.read_bytes() == data:
            return path
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_tls_files(
    host_id: int | None, ca_cert: str, client_cert: str, client_key: str, *, prefix: str = ""
) -> TLSFiles:
    """Write the PEMs for one host (`prefix` "node-": one Swarm node's engine); an
    unsaved one gets a temporary folder."""
    root = _private_folder(tls_root())
    if host_id is None:
        folder = Path(tempfile.mkdtemp(dir=root, prefix="unsaved-"))
    else:
        folder = _private_folder(root / _folder_name(host_id, prefix))
    return TLSFiles(
        ca_cert=_write_private(folder / "ca.pem", ca_cert),
        client_cert=_write_private(folder / "cert.pem", client_cert),
        client_key=_write_private(folder / "key.pem", client_key),
        folder=folder,
        temporary=host_id is None,
    )


def forget_tls_files(host_id: int, *, prefix: str = "") -> None:
    """Remove a host's (or a node's) TLS folder, when it is removed or stops using TLS."""
    shutil.rmtree(tls_root() / _folder_name(host_id, prefix), ignore_errors=True)


def _folder_name(owner_id: int, prefix: str) -> str:
    if prefix not in ("", "node-"):
        raise ValueError(f"unknown TLS folder prefix {prefix!r}")
    return f"{prefix}{int(owner_id)}"
