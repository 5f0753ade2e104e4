"""Image references: the one parser of `[registry/]path[:tag][@digest]`, as the engine reads it.

The grammar follows distribution's `reference` package (what Docker itself parses), so a
reference means here exactly what it will mean to the engine. Two facts matter for
tenant isolation:

- The engine resolves a name that is not in its reference store as an image *id prefix*:
  `sha256:55794016`, `55794016a33c`, even `55` (any unambiguous hex prefix) runs whatever
  cached image has that id, whoever pulled it. `is_image_id` spots those; the compose
  reader refuses them, and the reconciler refuses them again before pulling.
- The first path component is a registry host when it contains `.` or `:`, is
  `localhost`, or has upper case letters; otherwise the image is on Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_HOST}|{_IPV6})(?::[0-9]{{1,5}})?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
# What the engine's image store would take as an id or an id prefix (see above).
_IMAGE_ID = re.compile(r"^(?:sha256:)?[0-9a-f]+$", re.IGNORECASE)
MAX_NAME = 255  # distribution's limit on the repository name


class ImageReferenceError(ValueError):
    """A reference Berth refuses; the message is a sentence for the user."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. `domain` is the registry as written (None: Docker Hub)."""

    domain: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def on_hub(self) -> bool:
        # Exact spelling only: the engine treats `DOCKER.IO` as a registry of its own.
        return self.domain is None or self.domain in HUB_ALIASES

    @property
    def repository(self) -> str:
        """The name as written, without tag or digest: `127.0.0.1:5000/acme/web`."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def hub_path(self) -> str:
        """The repository path on Docker Hub (`redis` is `library/redis`)."""
        return self.path if "/" in self.path else f"library/{self.path}"

    def with_digest(self, digest: str) -> str:
        """The same repository pinned to `digest` (what an authorised pull returned)."""
        return f"{self.repository}@{digest}"


def is_image_id(text: str) -> bool:
    """True for what the engine would resolve as an image id or an id prefix."""
    return bool(_IMAGE_ID.match(text.strip()))


def split_domain(domain: str) -> tuple[str, int | None]:
    """`LOCALHOST:5000` -> ("localhost", 5000); `[::1]:5000` -> ("::1", 5000);
    `registry.example.com.` -> ("registry.example.com", None)."""
    host, port = domain, None
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif ":" in domain:
        host, _, number = domain.rpartition(":")
        port = int(number)
    return host.lower().rstrip("."), port


def parse_image(text: str) -> ImageRef:
    """Parse a reference as the engine would, or raise ImageReferenceError.

    Image ids and id prefixes are refused: a reference must name a repository.
    """
    if is_image_id(text):
        raise ImageReferenceError(
            f"{text!r} would be read by the engine as an image id: name the repository "
            "(and a tag or digest), for example registry.example.com/team/app:1"
        )
    match = _REFERENCE.match(text)
    if not match:
        raise ImageReferenceError(f"invalid image reference {text!r}")
    domain, path = match["domain"], match["path"]
    if domain is not None and not _names_registry(domain):
        # `team/app`: a first component without `.`, `:` or upper case is part of the path.
        path, domain = f"{domain}/{path}", None
    if len(path) + len(domain or "") + 1 > MAX_NAME:
        raise ImageReferenceError(f"image reference {text!r} is too long")
    return ImageRef(domain=domain, path=path, tag=match["tag"], digest=match["digest"])


def _names_registry(first: str) -> bool:
    """Docker's rule for the first component: a registry when it has `.` or `:`, is
    `localhost`, or is not all lower case."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()
