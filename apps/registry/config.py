"""The registry's config.yml, rendered by Berth so that it trusts Berth's token service,
and the gate's haproxy.cfg.

Clients never talk to docker-registry directly: HAProxy (the gate) serves
BERTH_REGISTRY_ADDR and passes everything to the registry on a loopback address
(`backend_addr()`), except a manifest upload, which goes to Berth first
(`/registry/gate/...`): the registry cannot be asked whether a push fits the tenant's
storage quota, and the manifest is the one request that names every blob of an image
before the image exists.

Filesystem storage under BERTH_STATE_DIR/registry/data by default. Object storage is a
drop-in alternative: replace the `filesystem` block with distribution's `s3` driver
(see the comment in the rendered file and apps/registry/README.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from django.conf import settings

from apps.registry.token.keys import ensure_signing_key, registry_state_dir, write_private

NOTIFY_SECRET_FILE = "notify.secret"
GATE_SECRET_FILE = "gate.secret"
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


def gate_secret() -> str:
    """What the gate sends with a manifest upload, so Berth believes the registry address
    it names (a request that comes around the gate goes to `backend_addr()`)."""
    return _installation_secret(GATE_SECRET_FILE)


def registry_addr() -> str:
    """Where clients (docker, engines, Berth itself) reach the registry: the gate."""
    return settings.BERTH_REGISTRY_ADDR


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def backend_addr(front: str | None = None) -> str:
    """Where docker-registry itself listens: BERTH_REGISTRY_BACKEND_ADDR, else loopback
    on the port after the gate's, so only this machine can go around the gate."""
    if settings.BERTH_REGISTRY_BACKEND_ADDR and front is None:
        return settings.BERTH_REGISTRY_BACKEND_ADDR
    _, port = split_addr(front or registry_addr())
    return f"127.0.0.1:{port + 1}"


def portal_addr(public_url: str | None = None) -> str:
    """host:port of Berth's portal as the gate reaches it, from its public URL."""
    url = urlsplit(public_url or settings.BERTH_PUBLIC_URL)
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.hostname}:{port}"


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
            "addr": addr or backend_addr(),
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


def _replace_private(path: Path, text: str) -> Path:
    """Write `text` to `path` with mode 0600, atomically (a process restarted meanwhile
    never reads half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    write_private(tmp, text.encode())
    tmp.replace(path)
    return path


def write_config(path: Path, **options) -> Path:
    """Write config.yml (it holds the notification and HTTP secrets)."""
    return _replace_private(path, render_config(**options))


GATE_TEMPLATE = """\
# The registry's gate, rendered by Berth (apps/registry/config.py): clients reach the
# registry here; manifest uploads go to Berth first, which checks the tenant's storage
# quota and forwards them; everything else goes straight to docker-registry.
global
    maxconn 4096
    # Layers pass through: 64 KiB buffers and kernel splicing keep the gate's cost on a
    # 50 MB pull within the noise (16 KiB copies through user space doubled it here).
    tune.bufsize 65536

defaults
    mode http
    option splice-auto
    timeout connect 5s
    timeout client 15m
    timeout server 15m
    timeout http-keep-alive 30s

frontend registry
    bind {front}
    # Names, references, digests and upload ids never need percent-encoding, dot segments
    # or empty segments; the registry would decode or clean such a path into one the
    # rules below did not see (`/v2/acme/web%2Fmanifests%2F1` is a manifest upload to
    # it), so a write that has any is refused here.
    acl write_method method PUT POST PATCH DELETE
    acl odd_path path -m sub % // /./ /../
    acl odd_path path -m end /. /..
    http-request deny deny_status 400 if write_method odd_path
    acl manifest_upload method PUT
    acl manifest_upload_path path_reg ^/v2/.+/manifests/[^/]+$
    use_backend berth_gate if manifest_upload manifest_upload_path
    acl upload_start method POST
    acl upload_start_path path_reg ^/v2/.+/blobs/uploads/?$
    use_backend berth_gate if upload_start upload_start_path
    default_backend registry

backend registry
    server registry {backend}

backend berth_gate
    http-request set-header X-Berth-Registry-Host %[req.hdr(host)]
    http-request set-header X-Berth-Registry-Backend {backend}
    http-request set-header X-Berth-Gate-Secret {secret}
    http-request set-path /registry/gate%[path]
    http-request set-header Host {portal}
    server berth {portal}
"""


def render_gate_config(
    *, front: str | None = None, backend: str | None = None, portal: str | None = None
) -> str:
    """haproxy.cfg for the gate in front of the registry (by default the configured
    addresses, as config.yml's own `http.addr`)."""
    return GATE_TEMPLATE.format(
        front=front or registry_addr(),
        backend=backend or backend_addr(front),
        portal=portal or portal_addr(),
        secret=gate_secret(),
    )


def write_gate_config(path: Path, **options) -> Path:
    """Write haproxy.cfg (it holds the gate's secret)."""
    return _replace_private(path, render_gate_config(**options))
