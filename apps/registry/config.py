"""The registry's config.yml, rendered by Berth so that it trusts Berth's token service.

Filesystem storage under BERTH_STATE_DIR/registry/data by default. Object storage is a
drop-in alternative: replace the `filesystem` block with distribution's `s3` driver
(see the comment in the rendered file and apps/registry/README.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml
from django.conf import settings

from apps.registry.keys import ensure_signing_key, registry_state_dir, write_private

NOTIFY_SECRET_FILE = "notify.secret"
HTTP_SECRET_FILE = "http.secret"

S3_COMMENT = """\
# Object storage (S3-compatible: AWS, MinIO, Ceph RGW...) instead of local files:
# replace the `filesystem:` block under `storage:` with
#   s3:
#     region: us-east-1
#     regionendpoint: https://minio.example.com   # omit for AWS
#     bucket: berth-registry
#     accesskey: ...            # or leave out and use the instance role
#     secretkey: ...
#     secure: true
#     v4auth: true
#     rootdirectory: /registry
# `registry_config --s3-bucket ... --s3-endpoint ...` renders it for you; garbage
# collection and quotas work the same, the bytes freed are then reported by the bucket.
"""


def _installation_secret(filename: str) -> str:
    """A random secret made on first use and kept in BERTH_STATE_DIR/registry (0600)."""
    path = registry_state_dir() / filename
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    return path.read_text().strip()


def notification_secret() -> str:
    """The shared secret the registry sends in `Authorization: Bearer ...` with events."""
    return _installation_secret(NOTIFY_SECRET_FILE)


def registry_addr() -> str:
    return settings.BERTH_REGISTRY_ADDR


def data_dir() -> Path:
    return registry_state_dir() / "data"


def token_realm(public_url: str | None = None) -> str:
    return f"{(public_url or settings.BERTH_PUBLIC_URL).rstrip('/')}/registry/token/"


def notifications_url(public_url: str | None = None) -> str:
    return f"{(public_url or settings.BERTH_PUBLIC_URL).rstrip('/')}/registry/notifications/"


def _storage(root: Path, readonly: bool, s3: dict | None) -> dict:
    backend = {"s3": s3} if s3 else {"filesystem": {"rootdirectory": str(root)}}
    return {
        **backend,
        "delete": {"enabled": True},
        "cache": {"blobdescriptor": "inmemory"},
        "maintenance": {
            "uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
            "readonly": {"enabled": readonly},
        },
    }


def build_config(
    *,
    public_url: str | None = None,
    addr: str | None = None,
    root: Path | None = None,
    readonly: bool = False,
    notifications: bool = True,
    auth: bool = True,
    s3: dict | None = None,
) -> dict:
    """The config as a dict. `auth=False` is for the benchmark's unauthenticated twin."""
    _, cert_path = ensure_signing_key()
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "berth-registry"}},
        "storage": _storage(Path(root) if root else data_dir(), readonly, s3),
        "http": {
            "addr": addr or registry_addr(),
            "secret": _installation_secret(HTTP_SECRET_FILE),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if auth:
        config["auth"] = {
            "token": {
                "realm": token_realm(public_url),
                "service": settings.BERTH_REGISTRY_SERVICE,
                "issuer": settings.BERTH_REGISTRY_ISSUER,
                "rootcertbundle": str(cert_path),
            }
        }
    if notifications:
        config["notifications"] = {
            "events": {"includereferences": True},
            "endpoints": [
                {
                    "name": "berth",
                    "url": notifications_url(public_url),
                    "headers": {"Authorization": [f"Bearer {notification_secret()}"]},
                    "timeout": "2s",
                    "threshold": 5,
                    "backoff": "2s",
                }
            ],
        }
    return config


def render_config(**options) -> str:
    """config.yml text: the S3 note, then the YAML."""
    return S3_COMMENT + yaml.safe_dump(build_config(**options), sort_keys=False)


def write_config(path: Path, **options) -> Path:
    """Write config.yml with mode 0600 (it holds the notification and HTTP secrets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    write_private(tmp, render_config(**options).encode())
    tmp.replace(path)
    return path
