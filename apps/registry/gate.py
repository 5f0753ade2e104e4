"""The registry's gate: a manifest upload passes through Berth, which refuses a push that
would take the tenant past its storage quota before the image exists.

Why here: the registry cannot be asked about quotas, and the token is issued before the
client says what it will push. The manifest is the one request that names every blob of
the image, after the blobs are uploaded and before any tag points at them. HAProxy
(config.GATE_TEMPLATE) routes `PUT /v2/<name>/manifests/<ref>` to `/registry/gate/...`;
this module checks the caller's token (our own signature, a push grant on that very
repository), counts the blobs the tenant does not store yet at their real size (asked
from the registry, not taken from the manifest's word), reserves them, and forwards the
request untouched to docker-registry. A refused push leaves unreferenced blobs behind,
which garbage collection frees.

A request without a token of ours granting push on that repository gets the registry's
own 401 challenge and goes no further; a manifest that is not an image (a list, an index,
garbage) brings no blob and is forwarded for the registry to judge.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass

import jwt
import requests
from django.conf import settings

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.core.queue import enqueue
from apps.registry import config, quota, tasks
from apps.registry.keys import signing_key
from apps.registry.registry_client import manifest_from
from apps.tenants.models import Tenant

# distribution's grammar: path components of a repository name; a tag or a digest
NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}"
MANIFEST_PATH = re.compile(
    rf"^/v2/(?P<name>{NAME_COMPONENT}(?:/{NAME_COMPONENT})*)/manifests/(?P<ref>{REFERENCE})$"
)
UPLOAD_START_PATH = re.compile(
    rf"^/v2/(?P<name>{NAME_COMPONENT}(?:/{NAME_COMPONENT})*)/blobs/uploads/?$"
)
# A blob sent whole with the POST that opens its upload (the docker client never does
# this: it opens the upload empty, then sends chunks straight to the registry).
MAX_MONOLITHIC = 4 * 1024 * 1024
HOST_HEADER = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")
MAX_MANIFEST = 4 * 1024 * 1024  # distribution's own limit for a manifest body
FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "User-Agent", "Accept")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
}


class GateError(Exception):
    """The registry behind the gate did not answer."""


@dataclass(frozen=True)
class Forwarded:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_manifest_path(path: str) -> tuple[str, str] | None:
    """(repository name, reference) of a manifest URL path, or None."""
    match = MANIFEST_PATH.match(path)
    return (match["name"], match["ref"]) if match else None


def manifest_blobs(body: bytes) -> dict[str, int]:
    """digest -> declared size of the config and layers an image manifest references.

    Manifest lists and indexes reference manifests pushed on their own (each one passed
    the gate), so they bring no blob; so do documents that are not manifests at all
    (the registry refuses those itself)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(document, dict):
        return {}
    manifest = manifest_from(document)
    if manifest.children or "manifests" in document:
        return {}
    blobs = {layer.digest: layer.size for layer in manifest.layers}
    if manifest.config_digest:
        blobs[manifest.config_digest] = manifest.config_size
    return blobs


def pusher_of(authorization: str, name: str) -> str | None:
    """The token's subject when it is ours, valid, and grants push on `name`."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = jwt.decode(
            token,
            signing_key().private_key.public_key(),
            algorithms=["ES256"],
            audience=settings.BERTH_REGISTRY_SERVICE,
            issuer=settings.BERTH_REGISTRY_ISSUER,
        )
    except jwt.PyJWTError:
        return None
    for entry in claims.get("access") or []:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "repository"
            and entry.get("name") == name
            and "push" in (entry.get("actions") or [])
        ):
            return str(claims.get("sub") or "")
    return None


def backend_for(headers) -> str:
    """The registry behind the gate that sent this request: the one its headers name when
    they carry the gate's secret (so several gates can share a Berth, as in tests and
    benchmarks), else the configured one. Never an address a client chose."""
    named = headers.get("X-Berth-Registry-Backend", "")
    secret = headers.get("X-Berth-Gate-Secret", "")
    if named and HOST_HEADER.match(named) and hmac.compare_digest(secret, config.gate_secret()):
        return named
    return config.backend_addr()


def stored_sizes(
    name: str, blobs: dict[str, int], authorization: str, backend: str
) -> dict[str, int]:
    """The sizes the registry really stores for `blobs` (HEAD on each); a blob it does not
    know keeps its declared size (the registry will refuse the manifest anyway)."""
    sizes = {}
    for digest, declared in blobs.items():
        try:
            answer = requests.head(
                f"http://{backend}/v2/{name}/blobs/{digest}",
                headers={"Authorization": authorization},
                timeout=10,
            )
            length = int(answer.headers.get("Content-Length", "")) if answer.ok else None
        except (requests.RequestException, ValueError):
            length = None
        sizes[digest] = declared if length is None else length
    return sizes


class QuotaExceededError(Exception):
    """The push would take the tenant past its storage quota; the message says by how much."""


def store_manifest(
    path: str, query: str, headers, body: bytes, *, name: str, subject: str
) -> Forwarded:
    """Check the tenant's quota, then hand the manifest to the registry.

    The blobs new to the tenant are reserved before the registry sees the manifest; when
    the registry does not store it after all, a usage walk is queued to give them back.
    A refusal is recorded in the tenant's activity, with who pushed what."""
    backend = backend_for(headers)
    tenant = Tenant.objects.filter(slug=name.partition("/")[0]).first()
    metered = tenant is not None and quota.is_limited(tenant)
    blobs = manifest_blobs(body) if metered else {}
    if blobs:
        sizes = stored_sizes(name, blobs, headers.get("Authorization", ""), backend)
        refusal = quota.admit_manifest(tenant, sizes)
        if refusal:
            record_event(
                "registry.push_refused",
                tenant=tenant,
                outcome=Event.Outcome.FAILURE,
                message=f"Push of {name} by {subject} refused: {refusal}",
                data={"repository": name, "subject": subject},
            )
            raise QuotaExceededError(refusal)
    try:
        answer = forward(path, query, headers, body, backend)
    except GateError:
        if blobs:
            enqueue(tasks.refresh_usage, tenant.pk)
        raise
    if blobs and answer.status >= 300:
        enqueue(tasks.refresh_usage, tenant.pk)
    return answer


def forward(
    path: str, query: str, headers, body: bytes, backend: str, method: str = "PUT"
) -> Forwarded:
    """Send the client's request to docker-registry as it came; its answer, minus the
    hop-by-hop headers."""
    sent = {key: headers[key] for key in FORWARDED_REQUEST_HEADERS if headers.get(key)}
    host = headers.get("X-Berth-Registry-Host", "")
    if HOST_HEADER.match(host):
        sent["Host"] = host  # the registry builds Location from it
    url = f"http://{backend}{path}" + (f"?{query}" if query else "")
    try:
        answer = requests.request(
            method, url, data=body, headers=sent, allow_redirects=False, timeout=60
        )
    except requests.RequestException as exc:
        raise GateError(f"the registry did not answer: {exc}") from exc
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
    return Forwarded(status=answer.status_code, headers=kept, body=answer.content)


def parse_upload_start_path(path: str) -> str | None:
    found = UPLOAD_START_PATH.match(path)
    return found.group("name") if found else None


def start_upload(path: str, query: str, headers, body: bytes, *, name: str) -> Forwarded:
    """Open a blob upload (or mount a blob) unless the tenant is at its storage quota.

    Every upload the registry accepts is counted when it completes (notifications), so
    once a tenant is at its quota no new upload opens: a tenant can pass its quota by at
    most the blobs it had already started uploading, never fill the disk with blobs no
    manifest references."""
    tenant = Tenant.objects.filter(slug=name.partition("/")[0]).first()
    if tenant is not None:
        allowed, message = quota.can_push(tenant)
        if not allowed:
            raise QuotaExceededError(message)
    return forward(path, query, headers, body, backend_for(headers), method="POST")


def challenge(name: str) -> str:
    """The WWW-Authenticate header the registry itself sends for a push on `name`."""
    return (
        f'Bearer realm="{config.token_realm()}",service="{settings.BERTH_REGISTRY_SERVICE}",'
        f'scope="repository:{name}:pull,push"'
    )
