"""The driver's operations on one engine: networks, volumes, images and containers.

Mixed into `DockerEngine`, which provides `_docker` (a connected docker-py client) and
`_errors()` (every failure comes out as an EngineError). Only the low-level API is used,
so each method is a known, small number of HTTP requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import docker.errors
from docker.utils import parse_repository_tag

from apps.hosts.engine.containers import (
    ContainerFile,
    ContainerRequest,
    ContainerStatus,
    checked_config,
    container_status,
    files_archive,
)
from apps.hosts.engine.driver import ProgressCallback
from apps.hosts.engine.errors import EngineError, pull_reason
from apps.hosts.engine.labels import (
    INSTALLATION_LABEL,
    foreign_owner,
    installation_id,
    label_filters,
    managed_labels,
)


class Operations:
    """Idempotent where it can be: ensure_* create only what is missing, remove_* ignore
    what is already gone, so a reconcile re-run after a crash simply continues."""

    endpoint: str

    def ensure_network(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, str] | None = None,
    ) -> str:
        """A bridge network with this name (created when missing); returns its id.

        A network of that name whose labels do not match `owner` (default: `labels`) is
        someone else's: EngineError, never joined.
        """
        api = self._docker.api
        wanted = _labels(labels)
        with self._errors():
            exact = _networks_named(api, name)
            if not exact:
                try:
                    api.create_network(name, driver="bridge", check_duplicate=True, labels=wanted)
                except docker.errors.APIError as exc:  # a concurrent worker created it first
                    if exc.status_code != 409:
                        raise
                exact = _networks_named(api, name)
            for network in exact:
                _refuse_foreign("network", name, network.get("Labels"), owner or wanted)
            return _one_network(api, exact)

    def remove_network(self, name: str, owner: Mapping[str, str]) -> None:
        """Remove the network if it is `owner`'s; gone already, or not ours: left alone."""
        api = self._docker.api
        with self._errors():
            found = _networks_named(api, name)
        for network in found:
            if foreign_owner(network.get("Labels"), owner) is None:
                self._remove(lambda api, ident=network["Id"]: api.remove_network(ident))

    def ensure_volume(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, str] | None = None,
    ) -> None:
        """A local named volume, created when missing; one of that name whose labels do
        not match `owner` (default: `labels`) is refused, never mounted."""
        api = self._docker.api
        wanted = _labels(labels)
        existing = self._volume_labels(name)
        if existing is None:
            with self._errors():
                api.create_volume(name=name, driver="local", labels=wanted)
            existing = self._volume_labels(name)  # a racing creator's labels win: check them
        _refuse_foreign("volume", name, existing, owner or wanted)

    def remove_volume(self, name: str, owner: Mapping[str, str]) -> None:
        """Remove the volume if it is `owner`'s; gone already, or not ours: left alone."""
        existing = self._volume_labels(name)
        if existing is not None and foreign_owner(existing, owner) is None:
            self._remove(lambda api: api.remove_volume(name, force=True))

    def _volume_labels(self, name: str) -> dict[str, str] | None:
        """The volume's labels, or None when there is no volume of that name."""
        try:
            with self._errors():
                found = self._docker.api.inspect_volume(name)
        except EngineError as exc:
            if exc.not_found:
                return None
            raise
        return dict(found.get("Labels") or {})

    def list_networks(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """This installation's networks matching `labels`: [{"id", "name", "labels"}]."""
        with self._errors():
            found = self._docker.api.networks(filters={"label": label_filters(labels)})
        return [
            {
                "id": n["Id"],
                "name": n.get("Name", ""),
                "labels": dict(n.get("Labels") or {}),
                "driver": n.get("Driver", ""),
                "created": n.get("Created", ""),
                "internal": bool(n.get("Internal")),
            }
            for n in found
        ]

    def list_volumes(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """This installation's volumes matching `labels`: [{"name", "labels"}]."""
        with self._errors():
            found = self._docker.api.volumes(filters={"label": label_filters(labels)})
        return [
            {
                "name": v["Name"],
                "labels": dict(v.get("Labels") or {}),
                "driver": v.get("Driver", ""),
                "created": v.get("CreatedAt", ""),
            }
            for v in (found or {}).get("Volumes") or ()
        ]

    def volume_usage(self) -> dict[str, dict[str, int]]:
        """This installation's volumes' sizes from the engine's `df` (one slow call: the
        engine measures every volume); another installation's volumes are left out."""
        with self._errors():
            found = self._docker.api.df()
        usage = {}
        for volume in (found or {}).get("Volumes") or ():
            if foreign_owner(volume.get("Labels"), {INSTALLATION_LABEL: installation_id()}):
                continue
            data = volume.get("UsageData") or {}
            usage[volume["Name"]] = {
                "size": int(data.get("Size", -1)),
                "refcount": int(data.get("RefCount", -1)),
            }
        return usage

    def volume_users(self, name: str) -> list[str]:
        """Every container mounting the volume, whoever made it (the engine's filter)."""
        with self._errors():
            found = self._docker.api.containers(all=True, filters={"volume": name})
        names = []
        for container in found:
            mounts = [m.get("Name") for m in container.get("Mounts") or ()]
            if name in mounts:  # the filter also matches a mount destination of that name
                names.append(((container.get("Names") or ["/?"])[0]).lstrip("/"))
        return names

    def list_images(self) -> list[dict[str, Any]]:
        """Every image in the cache: [{"id", "tags", "digests"}] (one call)."""
        with self._errors():
            found = self._docker.api.images()
        return [
            {
                "id": i["Id"],
                "tags": [t for t in i.get("RepoTags") or () if t != "<none>:<none>"],
                "digests": [d for d in i.get("RepoDigests") or () if d != "<none>@<none>"],
                "size": int(i.get("Size") or 0),
                "created": int(i.get("Created") or 0),
            }
            for i in found
        ]

    def remove_image(self, ref: str) -> None:
        """Untag `ref` (the image goes when no name is left); gone already is fine; an
        image a container still uses stays (the engine says 409), it is not forced."""
        try:
            self._remove(lambda api: api.remove_image(ref, noprune=False))
        except EngineError as exc:
            if exc.status != 409:
                raise

    def image_present(self, ref: str) -> bool:
        api = self._docker.api
        try:
            with self._errors():
                api.inspect_image(ref)
        except EngineError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def pull(
        self,
        ref: str,
        progress: ProgressCallback | None = None,
        auth_config: Mapping[str, str] | None = None,
    ) -> None:
        """Pull an image, reporting each progress message; EngineError names the image.

        `auth_config` ({"username", "password", "serveraddress"}) rides on this one
        request (X-Registry-Auth): nothing is stored on the engine, unlike `docker login`.
        """
        repository, tag = parse_repository_tag(ref)
        api = self._docker.api
        auth = dict(auth_config) if auth_config else None
        try:
            with self._errors():
                stream = api.pull(
                    repository, tag=tag or "latest", stream=True, decode=True, auth_config=auth
                )
                for message in stream:
                    if message.get("error"):
                        raise EngineError(str(message["error"]), retryable=False)
                    if progress is not None:
                        progress(message)
        except EngineError as exc:
            detail = exc.message.split(f"answered {exc.status}: ", 1)[-1]
            raise EngineError(
                f"Cannot pull image {ref}: {pull_reason(detail)}",
                retryable=exc.retryable and not exc.not_found,
                status=exc.status,
            ) from exc

    def repo_digests(self, ref: str) -> list[str]:
        """The `repository@digest` names a local image is known by in registries it was
        pushed to or pulled from; empty when the image is missing."""
        try:
            with self._errors():
                return list(self._docker.api.inspect_image(ref).get("RepoDigests") or [])
        except EngineError as exc:
            if exc.not_found:
                return []
            raise

    def tag_image(self, source: str, target: str) -> None:
        """Give the local image `source` the extra name `target`; EngineError names both."""
        repository, tag = parse_repository_tag(target)
        try:
            with self._errors():
                self._docker.api.tag(source, repository, tag=tag or "latest")
        except EngineError as exc:
            raise EngineError(
                f"Cannot tag {source} as {target}: {exc.message}",
                retryable=False,
                status=exc.status,
            ) from exc

    def push(
        self,
        ref: str,
        progress: ProgressCallback | None = None,
        auth_config: Mapping[str, str] | None = None,
    ) -> str:
        """Push a local image; returns the manifest digest the registry stored.

        Like `pull`, the credential rides on this one request and is never stored on the
        engine. A refusal (denied, quota) comes back as EngineError with the registry's
        own message, which arrives inside the stream, not as an HTTP status.
        """
        repository, tag = parse_repository_tag(ref)
        auth = dict(auth_config) if auth_config else None
        digest = ""
        try:
            with self._errors():
                stream = self._docker.api.push(
                    repository, tag=tag or "latest", stream=True, decode=True, auth_config=auth
                )
                for message in stream:
                    if message.get("error"):
                        raise EngineError(str(message["error"]), retryable=False)
                    digest = (message.get("aux") or {}).get("Digest", digest)
                    if progress is not None:
                        progress(message)
        except EngineError as exc:
            detail = exc.message.split(f"answered {exc.status}: ", 1)[-1]
            raise EngineError(
                f"Cannot push image {ref}: {detail}", retryable=False, status=exc.status
            ) from exc
        return digest

    def create_container(self, request: ContainerRequest) -> str:
        """Create (not start) a container; the HostConfig is checked against the policy
        and the hardening first, and refused with a non-retryable EngineError."""
        config = checked_config(request)
        api = self._docker.api
        with self._errors():
            made = api.create_container_from_config(config, name=request.name)
            if not request.network_mode:
                for network, aliases in request.extra_networks:
                    api.connect_container_to_network(made["Id"], network, aliases=list(aliases))
        if request.files:
            self._put_files(made["Id"], request.files)
        return made["Id"]

    def _put_files(self, container_id: str, files: tuple[ContainerFile, ...]) -> None:
        """Write the request's files into the created container; a container that could
        not get them is removed (it must never start without its secrets)."""
        api = self._docker.api
        try:
            with self._errors():
                api.put_archive(container_id, "/", files_archive(files))
        except EngineError as exc:
            self._remove(lambda api: api.remove_container(container_id, force=True))
            raise EngineError(
                f"Could not write the secrets and configs into {container_id[:12]}: {exc}",
                retryable=exc.retryable,
            ) from None

    def start(self, container_id: str) -> None:
        api = self._docker.api
        with self._errors():
            api.start(container_id)

    def stop(self, container_id: str, timeout: int = 10) -> None:
        api = self._docker.api
        with self._errors():
            api.stop(container_id, timeout=timeout)

    def restart(self, container_id: str, timeout: int = 10) -> None:
        api = self._docker.api
        with self._errors():
            api.restart(container_id, timeout=timeout)

    def remove(self, container_id: str, force: bool = True) -> None:
        """Remove a container (and its anonymous volumes); already gone is fine."""
        self._remove(lambda api: api.remove_container(container_id, v=True, force=force))

    def inspect_container(self, container_id: str) -> ContainerStatus:
        api = self._docker.api
        with self._errors():
            attrs = api.inspect_container(container_id)
        return container_status(attrs)

    def inspect_container_raw(self, container_id: str) -> dict[str, Any]:
        api = self._docker.api
        with self._errors():
            return dict(api.inspect_container(container_id))

    def _remove(self, call: Callable[[Any], Any]) -> None:
        api = self._docker.api
        try:
            with self._errors():
                call(api)
        except EngineError as exc:
            if not exc.not_found:
                raise


def _networks_named(api: Any, name: str) -> list[dict[str, Any]]:
    """Networks with exactly this name (the engine's filter matches substrings)."""
    return [n for n in api.networks(names=[name]) if n.get("Name") == name]


def _created_key(network: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first: "2026-01-02T03:04:05.5Z" with its fraction padded, then the id."""
    stamp = str(network.get("Created") or "")
    head, _, rest = stamp.partition(".")
    digits = "".join(ch for ch in rest if ch.isdecimal())
    return f"{head}.{digits.ljust(9, '0')}", str(network.get("Id", ""))


def _one_network(api: Any, found: list[dict[str, Any]]) -> str:
    """The oldest of the networks with one name; the others are removed.

    The engine's duplicate check is not atomic: two workers deploying stacks of one
    environment at once can both create its network, and then every container create
    naming it fails as "ambiguous". Every caller keeps the same one (the oldest) and
    removes the rest; one still in use stays for the next pass.
    """
    keep, *extra = sorted(found, key=_created_key)
    for duplicate in extra:
        with contextlib.suppress(docker.errors.APIError):  # in use, or gone already
            api.remove_network(duplicate["Id"])
    return keep["Id"]


def _refuse_foreign(
    kind: str, name: str, found: Mapping[str, str] | None, owner: Mapping[str, str]
) -> None:
    reason = foreign_owner(found, owner)
    if reason is not None:
        raise EngineError(
            f"The {kind} name {name} is taken by an object Berth will not use: {reason}. "
            f"Remove or rename that {kind} on the engine.",
            retryable=False,
            status=409,
        )


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Berth's managed marker plus the given labels (keys already fully qualified)."""
    return {**managed_labels(), **dict(labels or {})}
