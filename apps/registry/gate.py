"""The registry's gate: a manifest upload passes through Berth, which refuses a push that
would take the tenant past its storage quota before the image exists.

Why here: the registry cannot be asked about quotas, and the token is issued before the
client says what it will push. The manifest is the one request that names every blob of
the image, after the blobs are uploaded and before any tag points at them. HAProxy
(config.GATE_TEMPLATE) routes `PUT /v2/<name>/manifests/<ref>` to `/registry/gate/...`;
`views.ManifestGateView` checks the caller's token (our own signature, a push grant on
that very repository), then `services.store_manifest` counts the blobs the tenant does
not store yet at their real size (asked from the registry, not taken from the manifest's
word), reserves them, and forwards the request untouched to docker-registry with this
module's `forward`. A refused push leaves unreferenced blobs behind,
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
from django.http import JsonResponse

from apps.registry import config
from apps.registry.client import manifest_from
from apps.registry.token.keys import signing_key

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


def _bearer_claims(authorization: str) -> dict | None:
    """The claims of the request's bearer token when it is ours and valid; None without
    a bearer token. Raises jwt.PyJWTError for any other token (not ours, expired...)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return jwt.decode(
        token,
        signing_key().private_key.public_key(),
        algorithms=["ES256"],
        audience=settings.BERTH_REGISTRY_SERVICE,
        issuer=settings.BERTH_REGISTRY_ISSUER,
    )


def pusher_of(authorization: str, name: str) -> str | None:
    """The token's subject when it is ours, valid, and grants push on `name`."""
    try:
        claims = _bearer_claims(authorization)
    except jwt.PyJWTError:
        return None
    for entry in (claims or {}).get("access") or []:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "repository"
            and entry.get("name") == name
            and "push" in (entry.get("actions") or [])
        ):
            return str(claims.get("sub") or "")
    return None


def token_problem(authorization: str) -> str:
    """Why a push is refused, in the bearer challenge's words (RFC 6750): ""
    without a token (the client then asks the token service), "invalid_token" for one
    that is not ours or expired, "insufficient_scope" for ours without push on `name`.

    The docker daemon retries a refused upload five times over 50 s unless the answer
    names one of these (then it prints "denied: requested access to the resource is
    denied" at once), as the registry's own answers do."""
    try:
        claims = _bearer_claims(authorization)
    except jwt.PyJWTError:
        return "invalid_token"
    return "" if claims is None else "insufficient_scope"


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


def challenge(name: str, error: str = "") -> str:
    """The WWW-Authenticate header the registry itself sends for a push on `name`."""
    value = (
        f'Bearer realm="{config.token_realm()}",service="{settings.BERTH_REGISTRY_SERVICE}",'
        f'scope="repository:{name}:pull,push"'
    )
    return value + (f',error="{error}"' if error else "")


def registry_error(status: int, code: str, message: str) -> JsonResponse:
    """An error in the registry's own format; the docker client prints the message."""
    return JsonResponse(
        {"errors": [{"code": code, "message": message, "detail": None}]}, status=status
    )


def unauthorized(name: str, error: str = "") -> JsonResponse:
    """The registry's own 401 for a push on `name`, with its challenge (`error`: see
    `token_problem`) and the access it lacks as the error's detail, as the registry
    sends it (an error without detail reads to the docker daemon as one to retry)."""
    detail = [{"Type": "repository", "Class": "", "Name": name, "Action": "push"}]
    response = JsonResponse(
        {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                     "detail": detail}]},
        status=401,
    )  # fmt: skip
    response["WWW-Authenticate"] = challenge(name, error)
    return response
