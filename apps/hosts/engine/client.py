"""The single-engine driver: one Docker engine reached over a unix socket or TCP (+TLS).

`single_engine(host)` does no I/O; the connection is made on the first call, inside the
error translation, so every failure surfaces as an EngineError from a method.
"""

from __future__ import annotations

import base64
import json
import posixpath
import shutil
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import docker
from django.conf import settings
from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
from docker.utils import version_lt

from apps.hosts.engine.changes import ChangeFeed
from apps.hosts.engine.checks import (
    CheckResult,
    ContainerWatch,
    HealthTest,
    health_test_of,
    run_exec,
)
from apps.hosts.engine.diskprobe import DiskProbe
from apps.hosts.engine.driver import EngineDriver, EngineInfo, ManagedContainer
from apps.hosts.engine.errors import EngineError, engine_errors
from apps.hosts.engine.labels import INSTALLATION_LABEL, MANAGED_LABEL, label_filters, label_key
from apps.hosts.engine.operations import Operations
from apps.hosts.engine.streams import LogStream, ShellSession, StatsStream, stats_sample
from apps.hosts.engine.tls import TLSFiles, write_tls_files

# Go's os.FileMode type bits, as the engine reports a path's mode.
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


# Connections kept per client: the metrics collector asks for many containers' stats at
# once (each one-shot call waits for the engine's next one-second collection tick, so
# they are answered together only when they are asked together); docker-py's default
# of 10 would open and drop the others' connections each time.
POOL_SIZE = 64


def _negotiated_version(server_api: str) -> str:
    """The newest API version both docker-py and the engine speak."""
    if version_lt(server_api, MINIMUM_DOCKER_API_VERSION):
        raise EngineError(
            f"The engine speaks API {server_api}; "
            f"Berth needs {MINIMUM_DOCKER_API_VERSION} or newer.",
            retryable=False,
        )
    if version_lt(DEFAULT_DOCKER_API_VERSION, server_api):
        return DEFAULT_DOCKER_API_VERSION
    return server_api


class DockerEngine(Operations, DiskProbe, EngineDriver):
    """The single-engine driver: one Docker engine; nothing docker-py leaks out of it.

    `api_calls` counts the HTTP requests made to the engine (for benchmarks and tests).
    """

    def __init__(
        self, endpoint: str, *, timeout: float, tls: TLSFiles | None = None, tls_verify: bool = True
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._tls = tls
        self._tls_verify = tls_verify
        self._client: docker.DockerClient | None = None
        self._version: dict[str, Any] | None = None
        self.api_calls = 0

    def __repr__(self) -> str:
        return f"<DockerEngine {self.endpoint}>"

    def _errors(self):
        return engine_errors(self.endpoint, self.timeout)

    def _new_client(self, version: str) -> docker.DockerClient:
        tls: docker.tls.TLSConfig | bool = False
        if self._tls is not None:
            tls = docker.tls.TLSConfig(
                client_cert=(str(self._tls.client_cert), str(self._tls.client_key)),
                ca_cert=str(self._tls.ca_cert),
                verify=self._tls_verify,
            )
        client = docker.DockerClient(
            base_url=self.endpoint,
            version=version,
            timeout=self.timeout,
            tls=tls,
            max_pool_size=POOL_SIZE,
        )
        # Engines are reached directly with the host's own CA: REQUESTS_CA_BUNDLE, proxy
        # variables and .netrc in the environment must not override them.
        client.api.trust_env = False
        client.api.hooks["response"].append(self._count_call)
        return client

    def _count_call(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self.api_calls += 1
        return response

    @property
    def _docker(self) -> docker.DockerClient:
        """The docker-py client, connected on first use with a negotiated API version."""
        if self._client is None:
            with self._errors():
                probe = self._new_client(MINIMUM_DOCKER_API_VERSION)
                try:
                    version = probe.api.version(api_version=False)
                finally:
                    probe.close()
                self._client = self._new_client(_negotiated_version(version["ApiVersion"]))
            self._version = version
        return self._client

    def ping(self) -> None:
        """Raise EngineError unless the engine answers."""
        with self._errors():
            self._docker.ping()

    def info(self) -> EngineInfo:
        client = self._docker
        with self._errors():
            data = client.info()
        return self._info_from(data)

    def _raw_info(self) -> dict[str, Any]:
        """The engine's whole `docker info` document (its Swarm part says which node it is)."""
        client = self._docker
        with self._errors():
            return dict(client.info())

    def _info_from(self, data: Mapping[str, Any]) -> EngineInfo:
        """EngineInfo from an info document and the version negotiated at connect."""
        version = self._version or {}
        return EngineInfo(
            engine_version=str(version.get("Version") or data.get("ServerVersion") or ""),
            api_version=str(version.get("ApiVersion") or ""),
            operating_system=str(data.get("OperatingSystem") or ""),
            cpus=int(data.get("NCPU") or 0),
            memory_bytes=int(data.get("MemTotal") or 0),
            containers_running=int(data.get("ContainersRunning") or 0),
            containers_total=int(data.get("Containers") or 0),
        )

    def list_managed(
        self, labels: Mapping[str, str | None] | None = None
    ) -> list[ManagedContainer]:
        """Berth's containers on this engine (all states), narrowed by `io.berth.` labels.

        `labels` maps a key (`tenant` or `io.berth.tenant`) to a value, or to None for
        "has this label". One filtered list call, whatever the number of containers.
        """
        filters = {"label": label_filters(labels)}
        client = self._docker
        with self._errors():
            found = client.containers.list(all=True, sparse=True, filters=filters)
        return [_managed_container(c.attrs) for c in found]

    def list_managed_ids(self, ids: Collection[str]) -> list[ManagedContainer]:
        """Those of `ids` that are this installation's containers, in one call (the engine
        serializes only those: listing 50 of 5,000 costs a small part of listing all)."""
        if not ids:
            return []
        filters = {"label": label_filters(), "id": sorted(ids)}
        client = self._docker
        with self._errors():
            found = client.containers.list(all=True, sparse=True, filters=filters)
        wanted = set(ids)  # the engine matches ids by prefix: keep exact ones only
        return [c for c in (_managed_container(f.attrs) for f in found) if c.id in wanted]

    def change_feed(self) -> ChangeFeed:
        return ChangeFeed(self).open()

    def list_legacy(self, labels: Mapping[str, str]) -> list[ManagedContainer]:
        """Berth containers made before installation ids (no `io.berth.installation`
        label) matching `labels`: only for handing a stack over to its new names."""
        filters = {
            "label": [MANAGED_LABEL + "=true", *(f"{label_key(k)}={v}" for k, v in labels.items())]
        }
        client = self._docker
        with self._errors():
            found = client.containers.list(all=True, sparse=True, filters=filters)
        listed = [_managed_container(c.attrs) for c in found]
        return [c for c in listed if INSTALLATION_LABEL not in c.labels]

    def health_test(self, container_id: str) -> HealthTest | None:
        return health_test_of(self.inspect_container_raw(container_id))

    def run_check(self, container_id: str, argv: tuple[str, ...], timeout: float) -> CheckResult:
        return run_exec(self, container_id, argv, timeout)

    def watch(self, labels: Mapping[str, str | None]) -> ContainerWatch:
        return ContainerWatch(self, labels).open()

    def logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        tail: str = "100",
        since: float | str | None = None,
        until: str | None = None,
        tty: bool | None = None,
    ) -> LogStream:
        return LogStream(
            self, container_id, follow=follow, tail=tail, since=since, until=until, tty=tty
        )

    def exec_shell(
        self, container_id: str, shell: str, marker: str, cols: int, rows: int
    ) -> ShellSession:
        return ShellSession(self, container_id, shell, marker, cols, rows)

    def stats(self, container_id: str) -> StatsStream:
        return StatsStream(self, container_id)

    def stats_once(self, container_id: str) -> dict[str, Any]:
        """`stream=false` with `one-shot` (API 1.41 and newer): the engine answers at once
        with the current counters instead of waiting a second for a second sample, and
        closes the response; CPU % is then computed by the caller between two calls."""
        api = self._docker.api
        one_shot = None if version_lt(api._version, "1.41") else True
        with self._errors():
            raw = api.stats(container_id, decode=False, stream=False, one_shot=one_shot)
        return stats_sample(raw)

    def container_starts(self, since: float, until: float) -> dict[str, int]:
        """One events call bounded by `until`, so the engine ends the response itself."""
        api = self._docker.api
        filters = {"type": ["container"], "event": ["start"], "label": label_filters()}
        counts: dict[str, int] = {}
        with self._errors():
            stream = api.events(since=since, until=until, filters=filters, decode=True)
            try:
                for event in stream:
                    key = str(event.get("id") or event.get("Actor", {}).get("ID") or "")
                    if key:
                        counts[key] = counts.get(key, 0) + 1
            finally:
                stream.close()
        return counts

    def available_shells(self, container_id: str, candidates: Iterable[str]) -> list[str]:
        """Stat each candidate through the archive API (HEAD, no tar is read): it needs
        nothing in the image, not even a shell, and the container may be stopped."""
        return [path for path in candidates if self._is_executable(container_id, path)]

    def _is_executable(self, container_id: str, path: str) -> bool:
        """An executable regular file at `path`, following up to 8 symlinks (busybox
        images link /bin/sh to /bin/busybox); a missing or dangling path is False."""
        for _ in range(8):
            stat = self._path_stat(container_id, path)
            if stat is None:
                return False
            mode = int(stat.get("mode") or 0)
            if mode & _GO_MODE_SYMLINK:
                target = str(stat.get("linkTarget") or "")
                if not target:
                    return False
                path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                continue
            return not mode & _GO_MODE_TYPE and bool(mode & 0o111)
        return False

    def _path_stat(self, container_id: str, path: str) -> dict[str, Any] | None:
        """The engine's stat of `path` (X-Docker-Container-Path-Stat), None when absent."""
        api = self._docker.api
        with self._errors():
            self.api_calls += 1
            response = api.head(
                api._url("/containers/{0}/archive", container_id), params={"path": path}
            )
            if response.status_code == 404 and "no such container" not in response.text.lower():
                return None
            api._raise_for_status(response)
        header = response.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            return json.loads(base64.b64decode(header))
        except (ValueError, TypeError):
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._tls is not None and self._tls.temporary:
            shutil.rmtree(self._tls.folder, ignore_errors=True)


def _managed_container(attrs: Mapping[str, Any]) -> ManagedContainer:
    names = attrs.get("Names") or []
    return ManagedContainer(
        id=attrs.get("Id", ""),
        name=names[0].lstrip("/") if names else "",
        image=attrs.get("Image", ""),
        state=attrs.get("State", ""),
        status=attrs.get("Status", ""),
        labels=dict(attrs.get("Labels") or {}),
        created=float(attrs.get("Created") or 0),
        ports=[
            {
                "container_port": p.get("PrivatePort"),
                "protocol": p.get("Type", "tcp"),
                "host_ip": p.get("IP", ""),
                "host_port": p.get("PublicPort"),
            }
            for p in attrs.get("Ports") or ()
            if p.get("PublicPort")
        ],
        image_id=attrs.get("ImageID", ""),
        addresses={
            name: net.get("IPAddress", "")
            for name, net in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items()
            if net and net.get("IPAddress")
        },
    )


def single_engine(host: Any) -> DockerEngine:
    """The driver for a host of kind "engine" (anything with its endpoint and TLS
    fields); no I/O yet."""
    tls = None
    if host.endpoint.startswith("tcp://") and host.tls_client_cert:
        tls = write_tls_files(host.pk, host.tls_ca_cert, host.tls_client_cert, host.tls_client_key)
    return DockerEngine(
        host.endpoint,
        timeout=settings.BERTH_ENGINE_TIMEOUT,
        tls=tls,
        tls_verify=getattr(host, "tls_verify", True),
    )
