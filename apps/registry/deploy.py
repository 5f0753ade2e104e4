"""Deploying images: the tenant's right to an image is checked before it runs.

An engine's image cache is shared by every tenant deploying to it, so "the image is
already here" says nothing about whether this tenant may use it. Before a container is
created, `authorise_image` decides how its image may be used:

- image ids and id prefixes (`sha256:…`, `55794016a33c`, `55`) are refused: the engine
  would run whatever cached image has that id, whoever pulled it;
- Berth's own registry (the gate or docker-registry behind it), by any spelling of its
  address that provably reaches it without DNS (`127.0.0.1:5000`, `LOCALHOST:5000`,
  `127.1:5000`, `0.0.0.0:5000`, `2130706433:5000`), by tag or by `@sha256:` digest:
  Berth checks itself that the tenant may pull the repository (the token service's
  rule) and, for a digest, that the repository holds it; then the engine pulls with the
  tenant's five-minute credential, unless it already holds exactly the image the
  registry's tag (or digest) names now (its `RepoDigests` for that repository list
  the registry's current digest: pulling would change nothing). Berth checks rather
  than trusting the pull because engine 20.10 answers a pull by digest from its own
  content store (whatever repository the manifest came from) without asking the
  registry;
- any other registry, including spellings of Berth's registry we do not recognise:
  always pulled, with no credential (Berth never hands one to a registry it does not
  own); Docker Hub names are used from the cache when present;
- in both of these cases, the image the name resolves to is then looked at: if it is
  also known to the engine as an image of Berth's registry (a local tag of a private
  image, a pull by digest answered from the cache, a foreign registry serving a
  manifest that points at a cached image), the tenant must be allowed one of those
  names, or the image is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.compose.images import ImageRef, ImageReferenceError, parse_image, split_domain
from apps.hosts.engine import EngineError
from apps.registry.client import RegistryClient, RegistryError
from apps.registry.config import backend_addr
from apps.registry.token.credentials import deployer_credentials
from apps.registry.token.service import deployer_may_pull

Progress = Callable[[dict[str, Any]], None]
HTTPS_PORT = 443


@dataclass(frozen=True)
class ImageAccess:
    """What `authorise_image` did: `pulled` when the engine went to a registry, and the
    manifest `digest` that pull reported (pin the container to it where possible)."""

    image: str
    pulled: bool
    digest: str = ""

    @property
    def pinned(self) -> str:
        """`repository@digest` of the authorised pull, or the image as written."""
        if not self.digest:
            return self.image
        return parse_image(self.image).with_digest(self.digest)


# Which addresses are Berth's registry ---------------------------------------------------


def _numeric_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host stands for, in any notation the engine's resolver
    accepts (127.1, 2130706433, 0x7f000001, 0177.0.0.1, ::ffff:127.0.0.1); else None."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        pass
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return None
    return address.ipv4_mapped or address


def _host_key(host: str) -> str:
    """What a host connects to, without asking DNS: `localhost`, `127.1`, `0.0.0.0` and
    `LOCALHOST.` are all 127.0.0.1 (a connection to the unspecified address lands on
    loopback); a name stays itself, in lower case."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return "127.0.0.1"
    address = _numeric_ip(host)
    if address is None:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "::1"
    return str(address)


def _every_interface(host: str) -> bool:
    address = _numeric_ip(host)
    return address is not None and address.is_unspecified


def _this_machine(host: str) -> bool:
    """A local address, or one of this machine's names (its host name, its public URL's)."""
    address = _numeric_ip(host)
    if address is not None:
        return address.is_loopback or address.is_unspecified
    public = (urlsplit(settings.BERTH_PUBLIC_URL).hostname or "").lower()
    return host in ("localhost", socket.gethostname().lower(), public)


def _endpoints() -> list[tuple[str, int | None]]:
    """(host, port) of the gate and of docker-registry behind it."""
    return [split_domain(settings.BERTH_REGISTRY_ADDR), split_domain(backend_addr())]


def _same_port(asked: int | None, ours: int | None) -> bool:
    return (asked or HTTPS_PORT) == (ours or HTTPS_PORT)


def is_berth_registry(domain: str | None) -> bool:
    """True when `domain` (as written in a reference) reaches Berth's registry (the gate
    or docker-registry behind it) without a DNS lookup: the same port, and the same host
    in any spelling of it (`LOCALHOST`, `127.1`, `0.0.0.0`, `[::ffff:127.0.0.1]` for
    127.0.0.1), or any of this machine's addresses and names when the registry listens on
    every interface. Only these get a tenant's credential: a name that merely resolves
    here could be anyone's, and another listener on another loopback address could be a
    tenant's published port."""
    if not domain:
        return False
    try:
        host, port = split_domain(domain)
    except ValueError:
        return False
    for ours, our_port in _endpoints():
        if not _same_port(port, our_port):
            continue
        if _host_key(host) == _host_key(ours):
            return True
        if _every_interface(ours) and _this_machine(host):
            return True
    return False


def registry_host(image: str) -> str | None:
    """The registry part of an image reference (`127.0.0.1:5000/acme/web:1` ->
    `127.0.0.1:5000`); None for Docker Hub style names (`nginx`, `library/redis`)."""
    try:
        return parse_image(image).domain
    except ImageReferenceError:
        return None


def registry_pull_auth(image: str, tenant_slug: str) -> dict[str, str] | None:
    """The engine `auth_config` for pulling `image` on behalf of `tenant_slug`, when the
    image lives in Berth's registry; None for any other registry (pulled anonymously)."""
    domain = registry_host(image)
    if not is_berth_registry(domain):
        return None
    username, password = deployer_credentials(tenant_slug)
    return {"username": username, "password": password, "serveraddress": domain or ""}


# Deciding, then pulling -------------------------------------------------------------------


def checked_reference(image: str) -> ImageRef:
    """The parsed reference, or a non-retryable EngineError naming the image: the last
    line of defence behind the compose reader, for specs written before it refused ids."""
    try:
        return parse_image(image)
    except ImageReferenceError as exc:
        raise EngineError(f"Refused image {image!r}: {exc}", retryable=False) from exc


def authorise_image(
    engine: Any, image: str, tenant_slug: str, progress: Progress | None = None
) -> ImageAccess:
    """Make `image` usable by `tenant_slug` on `engine`, or raise EngineError (see the
    module docstring for the rules). Returns what was done."""
    ref = checked_reference(image)
    if is_berth_registry(ref.domain):
        _check_berth_image(image, ref.path, ref.digest, tenant_slug)
        current = _current_copy(engine, image, ref)
        if current:
            return ImageAccess(image, False, current)
        auth = registry_pull_auth(image, tenant_slug)
        return ImageAccess(image, True, _pull(engine, image, auth, progress))
    access = ImageAccess(image, False)
    if not ref.on_hub or not engine.image_present(image):
        access = ImageAccess(image, True, _pull(engine, image, None, progress))
    _check_other_names(engine, image, tenant_slug)
    return access


def _check_berth_image(image: str, path: str, digest: str | None, tenant_slug: str) -> None:
    """Berth decides, not the engine: an engine answers a pull by digest from its cache
    (any repository's manifest with that digest) without asking the registry."""
    if not deployer_may_pull(tenant_slug, path):
        raise EngineError(
            f"Refused image {image!r}: pull access denied, tenant {tenant_slug!r} may not "
            f"pull {path} from Berth's registry.",
            retryable=False,
        )
    if digest and not _manifest_in(path, digest):
        raise EngineError(
            f"Refused image {image!r}: {path} has no manifest {digest} in Berth's registry.",
            retryable=False,
        )


def _current_copy(engine: Any, image: str, ref: ImageRef) -> str:
    """The manifest digest `image` names in Berth's registry now, when the engine already
    holds exactly that image (it was pulled from, or pushed to, this repository with this
    digest); "" otherwise, and the engine pulls. Asked after the tenant's right was
    checked: a pull would only have fetched the same manifest again (a token round trip
    through the gate for each image of each deployment)."""
    local = set()
    for name in engine.repo_digests(image):
        known = _parsed(name)
        if known and known.digest and known.path == ref.path and is_berth_registry(known.domain):
            local.add(known.digest)
    if not local:
        return ""
    wanted = ref.digest
    if not wanted:
        try:
            wanted = RegistryClient().manifest(ref.path, ref.tag or "latest").digest
        except RegistryError:
            return ""  # the engine's pull will say what is wrong
    return wanted if wanted in local else ""


def _manifest_in(path: str, digest: str) -> bool:
    try:
        RegistryClient().manifest(path, digest)
    except RegistryError as exc:
        if exc.status in (404, 400):
            return False
        raise EngineError(f"Cannot check {path}@{digest}: {exc}", retryable=True) from exc
    return True


def _check_other_names(engine: Any, image: str, tenant_slug: str) -> None:
    """The image `image` resolves to may also be a private image of Berth's registry: a
    local tag of it, a pull by digest answered from the cache, another registry serving
    a manifest that points at it. Then the tenant must be allowed one of those names."""
    berth = []
    for name in engine.repo_digests(image):
        ref = _parsed(name)
        if ref is not None and ref.digest and is_berth_registry(ref.domain):
            berth.append(ref)
    if not berth or any(_allowed(ref, tenant_slug) for ref in berth):
        return
    raise EngineError(
        f"Refused image {image!r}: the engine's copy of it is a private image of Berth's "
        f"registry that tenant {tenant_slug!r} may not pull.",
        retryable=False,
    )


def _allowed(ref: ImageRef, tenant_slug: str) -> bool:
    return deployer_may_pull(tenant_slug, ref.path) and _manifest_in(ref.path, ref.digest or "")


def _parsed(name: str) -> ImageRef | None:
    try:
        return parse_image(name)
    except ImageReferenceError:
        return None


def _pull(engine: Any, image: str, auth: dict | None, progress: Progress | None) -> str:
    """Pull through the driver; returns the manifest digest the engine reported."""
    seen: dict[str, str] = {}

    def report(message: dict[str, Any]) -> None:
        status = str(message.get("status") or "")
        if status.startswith("Digest: "):
            seen["digest"] = status.removeprefix("Digest: ").strip()
        if progress is not None:
            progress(message)

    engine.pull(image, progress=report, auth_config=auth)
    return seen.get("digest", "")
