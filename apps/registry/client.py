"""Berth talking to its registry over the HTTP API v2, with its own short-lived tokens.

The one module that calls the registry's API (the token view only signs; the registry
calls us back with notifications). Each request carries a token from token.service.issue_token
for the subject `berth-admin`, scoped to the repository it touches, so Berth needs no
stored registry password. Errors become RegistryError with the registry's own message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from apps.registry import config
from apps.registry.token.service import issue_token

ADMIN_SUBJECT = "berth-admin"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_ACCEPT = ", ".join([DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX])
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
CATALOG_PAGE = 100  # distribution's default catalog.maxentries
MAX_DOCUMENT = 4 * 1024 * 1024  # manifests and image configs are small JSON documents


class RegistryError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # Celery pickles errors: keep the status too
        return (type(self), (str(self), self.status))


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    size: int  # of the manifest document itself
    config_digest: str = ""
    config_size: int = 0
    layers: tuple[Layer, ...] = ()
    children: tuple[str, ...] = ()  # digests of platform manifests (an index)

    @property
    def image_size(self) -> int:
        return self.config_size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class ImageConfig:
    """What the page shows of an image's configuration; environment NAMES only."""

    created: str = ""
    architecture: str = ""
    os: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""


def image_config_from(document: dict) -> ImageConfig:
    """Keep the useful, non-secret parts of an image config blob (values of ENV dropped)."""
    cfg = document.get("config") or {}
    env = [str(item).split("=", 1)[0] for item in cfg.get("Env") or []]
    return ImageConfig(
        created=str(document.get("created") or ""),
        architecture=str(document.get("architecture") or ""),
        os=str(document.get("os") or ""),
        entrypoint=tuple(str(x) for x in cfg.get("Entrypoint") or ()),
        cmd=tuple(str(x) for x in cfg.get("Cmd") or ()),
        exposed_ports=tuple(sorted(cfg.get("ExposedPorts") or {})),
        env_names=tuple(env),
        labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        working_dir=str(cfg.get("WorkingDir") or ""),
        user=str(cfg.get("User") or ""),
    )


def manifest_from(
    document: dict, *, digest: str = "", media_type: str = "", size: int = 0
) -> Manifest:
    """A manifest document (Docker schema 2, OCI, or an index of platform manifests) as a
    Manifest. Read for the registry's answers and for what a client pushes through the
    gate, so nothing is taken on trust: a descriptor without a text digest and a
    non-negative integer size is left out."""
    media_type = str(document.get("mediaType") or media_type)
    if media_type in INDEX_TYPES or "manifests" in document:
        children = tuple(d.digest for d in _descriptors(document.get("manifests")))
        return Manifest(digest, media_type, size, children=children)
    config_blob = next(iter(_descriptors([document.get("config")])), None)
    return Manifest(
        digest=digest,
        media_type=media_type,
        size=size,
        config_digest=config_blob.digest if config_blob else "",
        config_size=config_blob.size if config_blob else 0,
        layers=_descriptors(document.get("layers")),
    )


def _descriptors(items: Any) -> tuple[Layer, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Layer(item["digest"], item["size"], str(item.get("mediaType") or ""))
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("digest"), str)
        and type(item.get("size")) is int
        and item["size"] >= 0
    )


class RegistryClient:
    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = (base_url or f"http://{config.registry_addr()}").rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _token(self, access: list[dict]) -> str:
        return issue_token(subject=ADMIN_SUBJECT, access=access, ttl=60).token

    def _request(
        self, method: str, path: str, access: list[dict], headers: dict | None = None
    ) -> requests.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {self._token(access)}"}
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"The registry at {self.base_url} cannot be reached: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise RegistryError(_error_message(response), response.status_code)
        return response

    @staticmethod
    def _repo_access(repository: str, *actions: str) -> list[dict]:
        return [{"type": "repository", "name": repository, "actions": list(actions)}]

    def ping(self) -> bool:
        try:
            self._request("GET", "/v2/", [])
        except RegistryError:
            return False
        return True

    def catalog(self, page: int = CATALOG_PAGE) -> list[str]:
        """Every repository name, page by page (the registry refuses n above 100 by default)."""
        access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        names: list[str] = []
        while True:
            query = urlencode({"n": page, **({"last": names[-1]} if names else {})})
            response = self._request("GET", f"/v2/_catalog?{query}", access)
            batch = list(_json(response).get("repositories") or [])
            names.extend(batch)
            if len(batch) < page or 'rel="next"' not in response.headers.get("Link", ""):
                return names

    def list_tags(self, repository: str) -> list[str]:
        """Tags of `repository` ("acme/web"), sorted; [] when it has none or is unknown."""
        try:
            response = self._request(
                "GET", f"/v2/{repository}/tags/list", self._repo_access(repository, "pull")
            )
        except RegistryError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(_json(response).get("tags") or [])

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest of a tag or digest, Docker schema 2 or OCI (an index lists children)."""
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            self._repo_access(repository, "pull"),
            {"Accept": MANIFEST_ACCEPT},
        )
        return manifest_from(
            _json(response),
            digest=response.headers.get("Docker-Content-Digest", ""),
            media_type=response.headers.get("Content-Type", ""),
            size=len(response.content),
        )

    def image_config(self, repository: str, config_digest: str) -> ImageConfig:
        response = self._request(
            "GET",
            f"/v2/{repository}/blobs/{config_digest}",
            self._repo_access(repository, "pull"),
        )
        return image_config_from(_json(response))

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest: every tag pointing at it goes with it."""
        if not digest.startswith("sha256:"):
            raise RegistryError("Manifests are deleted by digest (sha256:...).")
        self._request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            self._repo_access(repository, "pull", "delete"),
        )

    def platform_manifests(self, repository: str, reference: str) -> list[Manifest]:
        """The image manifests behind a reference: itself, or an index's children."""
        top = self.manifest(repository, reference)
        if not top.children:
            return [top]
        return [self.manifest(repository, child) for child in top.children]


def _json(response: requests.Response) -> dict[str, Any]:
    if len(response.content) > MAX_DOCUMENT:
        raise RegistryError("The registry sent a document too large to read.")
    try:
        data = json.loads(response.content or b"{}")
    except ValueError as exc:
        raise RegistryError("The registry sent something that is not JSON.") from exc
    return data if isinstance(data, dict) else {}


def _error_message(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        message = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    except (ValueError, AttributeError):
        message = ""
    return f"Registry answered {response.status_code}: {message or response.reason}"
