"""The engine driver interface: everything Berth asks of a host's container engine.

A driver is chosen per host by its kind (`get_engine(host)` in `kinds.py`); callers name
`EngineDriver` in their type hints and never a concrete driver. The single-engine driver
(`client.DockerEngine`) is the first implementation; a Swarm driver is the next.

Contract shared by every method: failures come out as `EngineError` (its `retryable`
flag says whether trying later may help, `not_found` that the object is gone), never as
a client library's exception. `ensure_*` create only what is missing and `remove*`
accept what is already gone, so a reconcile re-run after a crash simply continues.
A driver makes no I/O before its first method call, and is a context manager that
closes itself.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from apps.hosts.engine.changes import Changes
from apps.hosts.engine.checks import CheckResult, HealthTest
from apps.hosts.engine.containers import (
    ContainerRequest,
    ContainerStatus,
    exit_code_from_status,
    health_from_status,
)
from apps.hosts.engine.errors import EngineError

if TYPE_CHECKING:
    from apps.hosts.engine.diskprobe import DiskUsage

#: Called with each progress message of a pull or push, as the engine sends it.
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EngineInfo:
    """What an engine reports about itself; field names match the Host model."""

    engine_version: str
    api_version: str
    operating_system: str
    cpus: int
    memory_bytes: int
    containers_running: int
    containers_total: int


@dataclass(frozen=True)
class ManagedContainer:
    """A container as listed by the engine (one list call, no per-container inspect)."""

    id: str
    name: str
    image: str
    state: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    ports: list[dict[str, Any]] = field(default_factory=list)
    # network name -> the container's IPv4 address on it (the frontier reaches it there)
    addresses: dict[str, str] = field(default_factory=dict)
    image_id: str = ""  # the image's sha256 id, whatever name `image` gives

    @property
    def health(self) -> str:
        """healthy, unhealthy, starting, or "" without a health check (from the list call)."""
        return health_from_status(self.status)

    @property
    def exit_code(self) -> int | None:
        return exit_code_from_status(self.status)


class LogReader(Protocol):
    """A container's log, read blocking in a worker thread; `close()` from any thread
    unblocks the reader."""

    engine: EngineDriver

    def lines(self) -> Iterator[Any]: ...

    def batches(self, opened: threading.Event | None = None) -> Iterator[list[Any]]: ...

    def runs(self, opened: threading.Event | None = None) -> Iterator[list[tuple[str, bytes]]]: ...

    def close(self) -> None: ...


class ShellSession(Protocol):
    """An interactive TTY exec in a container, as the container's own user."""

    engine: EngineDriver

    def start(self) -> None: ...

    def read(self, size: int = ...) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def exit_code(self) -> int | None: ...

    def running(self) -> bool: ...

    def close(self) -> None: ...


class ContainerEvents(Protocol):
    """Container events read in a thread; `wait` returns True once one arrived since the
    previous wait, False after `timeout` (or at once forever after the stream broke)."""

    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...

    def __enter__(self) -> ContainerEvents: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ChangeFeedReader(Protocol):
    """Containers whose listing changed, read in a thread (engine/changes.py): `take()`
    returns those since the previous take, or None once the stream broke."""

    broken: bool

    def take(self) -> Changes | None: ...

    def pending(self) -> set[str]: ...

    def close(self) -> None: ...


class StatsReader(Protocol):
    """A container's resource figures, one summary per engine sample, read blocking."""

    engine: EngineDriver

    def samples(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class EngineDriver(ABC):
    """What Berth does on one host's engine. Every method may raise EngineError."""

    #: HTTP requests made to the engine so far (for benchmarks and tests).
    api_calls: int

    def __enter__(self) -> EngineDriver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # engine ------------------------------------------------------------------------------

    @abstractmethod
    def ping(self) -> None:
        """Return when the engine answers; EngineError otherwise."""

    @abstractmethod
    def info(self) -> EngineInfo:
        """Version, OS, CPUs, memory and container counts the engine reports."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and temporary files; safe to call twice."""

    # networks and volumes ----------------------------------------------------------------

    @abstractmethod
    def ensure_network(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, str] | None = None,
    ) -> str:
        """Idempotent: the network's id, created when missing; one owned by someone
        else (labels not matching `owner`, default `labels`) is refused, never joined."""

    @abstractmethod
    def remove_network(self, name: str, owner: Mapping[str, str]) -> None:
        """Remove the network if `owner`'s; gone already or foreign: left alone."""

    @abstractmethod
    def ensure_volume(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, str] | None = None,
    ) -> None:
        """Idempotent: the named volume, created when missing; a foreign one is refused."""

    @abstractmethod
    def remove_volume(self, name: str, owner: Mapping[str, str]) -> None:
        """Remove the volume if `owner`'s; gone already or foreign: left alone."""

    @abstractmethod
    def list_networks(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """This installation's networks matching `labels`:
        [{"id", "name", "labels", "driver", "created", "internal"}]."""

    @abstractmethod
    def list_volumes(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """This installation's volumes matching `labels`:
        [{"name", "labels", "driver", "created"}] (`created` as the engine writes it)."""

    @abstractmethod
    def volume_usage(self) -> dict[str, dict[str, int]]:
        """This installation's volumes' disk use: name -> {"size", "refcount"} in bytes
        and containers (-1 where the engine did not measure). The engine walks every
        volume's files for it (its `df`), so callers cache it or ask on one page only."""

    @abstractmethod
    def volume_users(self, name: str) -> list[str]:
        """Names of every container (any owner, any state) that mounts volume `name`:
        a volume anyone still mounts is in use and never removed by a person."""

    # images ------------------------------------------------------------------------------

    @abstractmethod
    def list_images(self) -> list[dict[str, Any]]:
        """Every cached image: [{"id", "tags", "digests", "size", "created"}] (`created`
        in seconds since the epoch)."""

    @abstractmethod
    def remove_image(self, ref: str) -> None:
        """Untag `ref`; gone already, or still used by a container: left alone."""

    @abstractmethod
    def image_present(self, ref: str) -> bool:
        """Whether the image is in the engine's cache."""

    @abstractmethod
    def pull(
        self,
        ref: str,
        progress: ProgressCallback | None = None,
        auth_config: Mapping[str, str] | None = None,
    ) -> None:
        """Pull an image (credentials for this request only); EngineError names it."""

    @abstractmethod
    def repo_digests(self, ref: str) -> list[str]:
        """The `repository@digest` names of a local image; empty when it is missing."""

    @abstractmethod
    def tag_image(self, source: str, target: str) -> None:
        """Give the local image `source` the extra name `target`."""

    @abstractmethod
    def push(
        self,
        ref: str,
        progress: ProgressCallback | None = None,
        auth_config: Mapping[str, str] | None = None,
    ) -> str:
        """Push a local image (credentials for this request only); returns its digest."""

    # containers --------------------------------------------------------------------------

    @abstractmethod
    def list_managed(
        self, labels: Mapping[str, str | None] | None = None
    ) -> list[ManagedContainer]:
        """Berth's containers (all states) narrowed by `io.berth.` labels, in one call."""

    def list_managed_ids(self, ids: Collection[str]) -> list[ManagedContainer]:
        """Those of `ids` that are this installation's containers (all states). Drivers
        that cannot filter by id list everything and keep those."""
        wanted = set(ids)
        return [c for c in self.list_managed() if c.id in wanted] if wanted else []

    def change_feed(self) -> ChangeFeedReader:
        """A standing subscription (made before returning) naming this installation's
        containers whose listing changed (engine/changes.py); its own connection, closed
        with the feed. Drivers without one refuse (the host pass then lists everything)."""
        raise EngineError(f"{type(self).__name__} has no change feed.", retryable=False)

    @abstractmethod
    def list_legacy(self, labels: Mapping[str, str]) -> list[ManagedContainer]:
        """Berth containers from before installation ids matching `labels` (hand-over)."""

    @abstractmethod
    def create_container(self, request: ContainerRequest) -> str:
        """Create (not start) a container checked against the host policy; its id."""

    @abstractmethod
    def start(self, container_id: str) -> None:
        """Start a created or stopped container."""

    @abstractmethod
    def stop(self, container_id: str, timeout: int = 10) -> None:
        """Stop a container, killing it after `timeout` seconds."""

    @abstractmethod
    def restart(self, container_id: str, timeout: int = 10) -> None:
        """Stop then start a container."""

    @abstractmethod
    def remove(self, container_id: str, force: bool = True) -> None:
        """Remove a container and its anonymous volumes; gone already is fine."""

    @abstractmethod
    def inspect_container(self, container_id: str) -> ContainerStatus:
        """A container's state, health and exit code; EngineError(not_found) when gone."""

    @abstractmethod
    def inspect_container_raw(self, container_id: str) -> dict[str, Any]:
        """The engine's whole inspect document of a container (Config, State with its
        health log, Mounts, NetworkSettings ...), for a person to read; callers mask
        secrets before showing it. EngineError(not_found) when gone."""

    @abstractmethod
    def health_test(self, container_id: str) -> HealthTest | None:
        """The container's health test as the engine runs it (compose's or the image's,
        CMD-SHELL through the container's shell); None without one or when disabled."""

    @abstractmethod
    def run_check(self, container_id: str, argv: tuple[str, ...], timeout: float) -> CheckResult:
        """Run `argv` once in the running container (exec, as its own user, never
        privileged); its exit code, or None when it did not finish within `timeout`."""

    @abstractmethod
    def watch(self, labels: Mapping[str, str | None]) -> ContainerEvents:
        """A subscription (made before returning) to the start, die, destroy and
        health_status events of this installation's containers matching `labels`; a
        context manager whose `wait(timeout)` says whether one arrived since the last."""

    # live streams ------------------------------------------------------------------------

    @abstractmethod
    def logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        tail: str = "100",
        since: float | str | None = None,
        until: str | None = None,
        tty: bool | None = None,
    ) -> LogReader:
        """A log reader (no I/O until read): `tail` lines, from `since`, then following.

        `since` and `until` as a string are the engine's "<seconds>.<nanoseconds>" (exact);
        `tty`, when the caller knows it, saves the inspect that tells the framing."""

    @abstractmethod
    def exec_shell(
        self, container_id: str, shell: str, marker: str, cols: int, rows: int
    ) -> ShellSession:
        """An interactive shell (opened by its `start()`); `marker` tags its processes."""

    def available_shells(self, container_id: str, candidates: Iterable[str]) -> list[str]:
        """Those of `candidates` (absolute paths) that are executable files in the
        container, symlinks followed: the shells a terminal may offer. Read from the
        container's filesystem, so it works for an image without any shell and for a
        stopped container. Drivers that cannot tell offer every candidate."""
        return list(candidates)

    @abstractmethod
    def stats(self, container_id: str) -> StatsReader:
        """A resource-figures reader (no I/O until read)."""

    # metrics -----------------------------------------------------------------------------

    def stats_once(self, container_id: str) -> dict[str, Any]:
        """One sample of a container's figures in one engine call that leaves no stream
        open (`streams.stats_sample`: the page's summary plus the cumulative CPU time,
        `cpu_ns`, from which the collector computes CPU % between two of its passes).
        Drivers without it refuse; the metrics collector then skips the host."""
        raise EngineError(f"{type(self).__name__} has no one-shot stats.", retryable=False)

    def container_starts(self, since: float, until: float) -> dict[str, int]:
        """How many times each of this installation's containers started between `since`
        and `until` (seconds since the epoch), from the engine's event log in one call
        that ends by itself: restarts by the restart policy or by hand are counted even
        when they happened between two metrics passes. Drivers without it: empty."""
        return {}

    def data_root_usage(self) -> DiskUsage:
        """The filesystem holding the engine's data (total, used, free; inodes when it
        has them), measured from inside the engine. Drivers without it: EngineError."""
        raise EngineError("This engine driver cannot measure its disk.", retryable=False)
