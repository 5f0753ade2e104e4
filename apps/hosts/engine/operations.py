"""The driver's operations on one engine: networks, volumes, images and containers.

Mixed into `Engine`, which provides `_docker` (a connected docker-py client) and
`_errors()` (every failure comes out as an EngineError). Only the low-level API is used,
so each method is a known, small number of HTTP requests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import docker.errors
from docker.utils import parse_repository_tag

from apps.hosts.engine.containers import (
    ContainerRequest,
    ContainerStatus,
    checked_config,
    container_status,
)
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.labels import managed_labels

ProgressCallback = Callable[[dict[str, Any]], None]


class Operations:
    """Idempotent where it can be: ensure_* create only what is missing, remove_* ignore
    what is already gone, so a reconcile re-run after a crash simply continues."""

    endpoint: str

    def ensure_network(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """A bridge network with this name (created when missing); returns its id."""
        api = self._docker.api
        with self._errors():
            found = api.networks(names=[name])
            exact = [n for n in found if n.get("Name") == name]
            if exact:
                return exact[0]["Id"]
            try:
                made = api.create_network(
                    name, driver="bridge", check_duplicate=True, labels=_labels(labels)
                )
            except docker.errors.APIError as exc:  # a concurrent worker created it first
                if exc.status_code != 409:
                    raise
                return api.inspect_network(name)["Id"]
        return made["Id"]

    def remove_network(self, name: str) -> None:
        self._remove(lambda api: api.remove_network(name))

    def ensure_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """A local named volume; creating an existing one is a no-op for the engine."""
        api = self._docker.api
        with self._errors():
            api.create_volume(name=name, driver="local", labels=_labels(labels))

    def remove_volume(self, name: str) -> None:
        self._remove(lambda api: api.remove_volume(name, force=True))

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

    def pull(self, ref: str, progress: ProgressCallback | None = None) -> None:
        """Pull an image, reporting each progress message; EngineError names the image."""
        repository, tag = parse_repository_tag(ref)
        api = self._docker.api
        try:
            with self._errors():
                for message in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                    if message.get("error"):
                        raise EngineError(str(message["error"]), retryable=False)
                    if progress is not None:
                        progress(message)
        except EngineError as exc:
            detail = exc.message.split(f"answered {exc.status}: ", 1)[-1]
            raise EngineError(
                f"Cannot pull image {ref}: {detail}",
                retryable=exc.retryable and not exc.not_found,
                status=exc.status,
            ) from exc

    def create_container(self, request: ContainerRequest) -> str:
        """Create (not start) a container; the HostConfig is checked against the policy
        and the hardening first, and refused with a non-retryable EngineError."""
        config = checked_config(request)
        api = self._docker.api
        with self._errors():
            made = api.create_container_from_config(config, name=request.name)
        return made["Id"]

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

    def _remove(self, call: Callable[[Any], Any]) -> None:
        api = self._docker.api
        try:
            with self._errors():
                call(api)
        except EngineError as exc:
            if not exc.not_found:
                raise


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Berth's managed marker plus the given labels (keys already fully qualified)."""
    return {**managed_labels(), **dict(labels or {})}
