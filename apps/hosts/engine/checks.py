"""A container's own health test, run once through exec, and a watch on the engine's
container events: what the reconciler uses to start dependents as soon as a dependency
is ready, instead of waiting for Docker's first scheduled probe (which engine 20.10 runs
one `interval` after the start) and polling for it.

Docker stays the source of truth for a container's health; these only tell the caller
sooner that it is worth looking again.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.hosts.engine.labels import label_filters
from apps.hosts.engine.streams import _close_response, _shutdown, _socket_of

if TYPE_CHECKING:
    from apps.hosts.engine.client import DockerEngine

_NS = 1_000_000_000
DEFAULT_SHELL = ("/bin/sh", "-c")
# Docker's defaults when a health check leaves a duration out (daemon/health.go).
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
OUTPUT_KEPT = 4096
# What wakes a watcher: a container started, exited, was removed, or its health changed.
WATCHED_ACTIONS = ("start", "die", "destroy", "health_status")


@dataclass(frozen=True)
class HealthTest:
    """A container's health test as the engine will run it: the argv to exec (CMD as
    is, CMD-SHELL through the container's shell) and its timings in seconds."""

    argv: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class CheckResult:
    """One run of a test: its exit code (None when it did not finish in time or could
    not be run) and the start of its output, for a person to read."""

    exit_code: int | None
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def health_test_of(attrs: Mapping[str, Any]) -> HealthTest | None:
    """The test in a container's inspect document (the compose file's, or the image's
    HEALTHCHECK, merged by the engine at create); None without one or when disabled."""
    config = attrs.get("Config") or {}
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    kind, args = test[0], test[1:]
    if kind == "CMD":
        argv = tuple(str(a) for a in args)
    elif kind == "CMD-SHELL":
        shell = tuple(config.get("Shell") or DEFAULT_SHELL)
        argv = (*shell, " ".join(str(a) for a in args))
    else:  # a bare string list is not something the engine runs either
        return None
    if not argv:
        return None
    return HealthTest(
        argv=argv,
        interval=(check.get("Interval") or 0) / _NS or DEFAULT_INTERVAL,
        timeout=(check.get("Timeout") or 0) / _NS or DEFAULT_TIMEOUT,
    )


def run_exec(engine: DockerEngine, container_id: str, argv: tuple[str, ...], timeout: float):
    """Exec `argv` in the container as its own user (never privileged), reading its
    output until it exits or `timeout` passes; then its exit code."""
    api = engine._docker.api
    with engine._errors():
        made = api.exec_create(container_id, list(argv), stdout=True, stderr=True, tty=False)
        sock = api.exec_start(made["Id"], socket=True)
    output, finished = _read_until_closed(sock, time.monotonic() + timeout)
    if not finished:
        return CheckResult(None, f"no answer in {timeout:g}s")
    with engine._errors():
        exit_code = api.exec_inspect(made["Id"]).get("ExitCode")
    return CheckResult(exit_code, _frames_text(output))


def _read_until_closed(sock: Any, deadline: float) -> tuple[bytes, bool]:
    """The bytes a hijacked exec socket sends until it is closed (True), or until the
    deadline (False; the socket is shut either way)."""
    raw = getattr(sock, "_sock", sock)
    chunks: list[bytes] = []
    kept = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), False
            readable, _, _ = select.select([raw], [], [], left)
            if not readable:
                continue
            data = raw.recv(65536)
            if not data:
                return b"".join(chunks), True
            if kept < OUTPUT_KEPT:
                chunks.append(data)
                kept += len(data)
    except OSError:
        return b"".join(chunks), True
    finally:
        _shutdown(sock)


def _frames_text(data: bytes) -> str:
    """The payload of the engine's multiplexed frames (8-byte headers), as text."""
    parts, at = [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "big")
        parts.append(data[at + 8 : at + 8 + size])
        at += 8 + size
    return b"".join(parts).decode(errors="replace").strip()[-500:]


class ContainerWatch:
    """The engine's container events for this installation's containers matching
    `labels`, read in a thread: `wait(timeout)` returns True as soon as one arrived since
    the last wait (events arriving while the caller looks are not lost), False after
    `timeout`. If the stream breaks, waits just sleep: callers look again anyway."""

    def __init__(self, engine: DockerEngine, labels: Mapping[str, str | None]) -> None:
        self.engine = engine
        self.labels = dict(labels)
        self.seen: list[dict[str, Any]] = []  # every event read, for tests and logs
        self._arrived = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self.broken = False

    def open(self) -> ContainerWatch:
        """Subscribe before returning: an event after this call is never missed."""
        api = self.engine._docker.api
        filters = {
            "type": ["container"],
            "label": label_filters(self.labels),
            "event": list(WATCHED_ACTIONS),
        }
        with self.engine._errors():
            stream = api.events(filters=filters, decode=True)
        self._response = stream._response
        self._thread = threading.Thread(
            target=self._read, args=(stream,), name="berth-container-watch", daemon=True
        )
        self._thread.start()
        return self

    def _read(self, stream: Any) -> None:
        # Ends when closed by us, or when the engine went away: waits just sleep then.
        with contextlib.suppress(Exception):
            for event in stream:
                self.seen.append(event)
                self._arrived.set()
        self.broken = True
        self._arrived.set()

    def wait(self, timeout: float) -> bool:
        if self.broken:
            time.sleep(max(timeout, 0))
            return False
        arrived = self._arrived.wait(max(timeout, 0))
        self._arrived.clear()
        return arrived and not self.broken

    def close(self) -> None:
        if self._response is not None:
            sock = _socket_of(self._response)
            _close_response(self._response)
            if sock is None:
                with contextlib.suppress(Exception):
                    self._response.close()
            self._response = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> ContainerWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
