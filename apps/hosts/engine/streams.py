"""Long-lived engine streams for live operations: logs, an interactive exec, stats.

The only Docker-touching code behind the websockets. Every stream is blocking and is
read in a worker thread of the bounded `POOL`; `close()` may be called from any thread
and unblocks the reader (the socket is shut down), so a consumer's disconnect always
ends the docker stream.
"""

from __future__ import annotations

import contextlib
import heapq
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.hosts.engine.errors import EngineError

if TYPE_CHECKING:
    from apps.hosts.engine.client import DockerEngine
    from apps.hosts.engine.driver import EngineDriver

#: Threads reading docker streams for all websockets of this process.
MAX_STREAMS = settings.BERTH_LIVE_STREAM_THREADS
POOL = ThreadPoolExecutor(max_workers=MAX_STREAMS, thread_name_prefix="berth-stream")
_slots = threading.BoundedSemaphore(MAX_STREAMS)

HEADER = struct.Struct(">BxxxL")
STREAM_NAMES = {0: "stdout", 1: "stdout", 2: "stderr"}
READ_SIZE = 65536
MAX_LINE = 16384
NEWLINE = ord("\n")


def reserve_slot() -> bool:
    """Take one of the pool's threads for a stream; False when all are busy.

    A long-lived stream holds a thread for its whole life, so streams over the bound are
    refused up front rather than queued forever behind the others.
    """
    return _slots.acquire(blocking=False)


def release_slot() -> None:
    _slots.release()


def slots_in_use() -> int:
    """Long-lived engine streams open in this process now (for tests and benchmarks)."""
    return MAX_STREAMS - _slots._value


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a container's log: its stream, the engine's timestamp (RFC 3339, the
    fraction's trailing zeros trimmed; "" when the line had none) and its text."""

    stream: str
    ts: str
    text: str

    @property
    def sort_key(self) -> str:
        """The one order of log lines, used by the live service log and the download: the
        timestamp with its fraction padded to nanoseconds (as written, "…00.5Z" would
        sort after "…00.51Z" and "…00Z" after both); lines without a timestamp first."""
        head, dot, fraction = self.ts.rstrip("Z").partition(".")
        return f"{head}.{fraction.ljust(9, '0')}" if dot else f"{head}.000000000"


def merge_lines(sources: Iterable[Iterable[LogLine]]) -> Iterator[tuple[int, LogLine]]:
    """Several logs as one, lazily, in `sort_key` order: (index of the source, line).

    Each source keeps its own order; lines at the same time come in the sources' order.
    """
    indexed = [_indexed(index, source) for index, source in enumerate(sources)]
    return heapq.merge(*indexed, key=lambda item: (item[1].sort_key, item[0]))


def _indexed(index: int, source: Iterable[LogLine]) -> Iterator[tuple[int, LogLine]]:
    for line in source:
        yield index, line


def _shutdown(sock: Any) -> None:
    """Shut a (possibly wrapped) socket down so a blocked recv in another thread returns."""
    raw = getattr(sock, "_sock", sock)
    for target in (raw, sock):
        try:
            target.shutdown(socket.SHUT_RDWR)
            break
        except (OSError, AttributeError):
            continue
    with contextlib.suppress(OSError):
        sock.close()


def _close_response(response: Any) -> None:
    """End a streamed HTTP response from any thread: shut its socket, then close it."""
    if response is None:
        return
    sock = _socket_of(response)
    if sock is not None:
        _shutdown(sock)
    with contextlib.suppress(Exception):
        response.close()


def _wait_forever(api: Any, response: Any) -> None:
    """No read timeout on a streamed response's socket: a quiet container is not an error.

    docker-py's `_disable_socket_timeout` takes the socket, not the response: handed the
    response it changed nothing, so a following log or stats stream ended silently
    (close 1000, "end") after BERTH_ENGINE_TIMEOUT seconds without a line.
    """
    api._disable_socket_timeout(api._get_raw_response_socket(response))


def _socket_of(response: Any) -> Any:
    try:
        return response.raw._fp.fp.raw
    except AttributeError:
        return None


class LogStream:
    """`docker logs` of one container, as LogLines with the stream told apart."""

    def __init__(
        self,
        engine: DockerEngine,
        container_id: str,
        *,
        follow: bool = True,
        tail: str = "100",
        since: float | str | None = None,
        until: str | None = None,
        tty: bool | None = None,
    ) -> None:
        self.engine = engine
        self.container_id = container_id
        self.follow = follow
        self.tail = tail
        self.since = since
        self.until = until
        self.tty = tty
        self._response: Any = None
        self._closed = threading.Event()

    def _params(self) -> dict[str, Any]:
        """The logs endpoint's query, the same for a container and a Swarm service."""
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": int(self.follow),
            "tail": self.tail,
        }
        # A string is passed as written ("<seconds>.<nanoseconds>"): a float cannot hold
        # a nanosecond timestamp exactly, and the log collector's cursor needs it exact.
        if isinstance(self.since, str):
            params["since"] = self.since
        elif self.since is not None:
            params["since"] = f"{self.since:.9f}"
        if self.until is not None:
            params["until"] = self.until
        return params

    def _open(self) -> tuple[Any, bool]:
        api = self.engine._docker.api
        params = self._params()
        with self.engine._errors():
            tty = self.tty
            if tty is None:  # a caller that knows it (the log collector) saves the call
                tty = bool(api.inspect_container(self.container_id)["Config"].get("Tty"))
            self.tty = tty
            response = api._get(
                api._url("/containers/{0}/logs", self.container_id), params=params, stream=True
            )
            api._raise_for_status(response)
            _wait_forever(api, response)
        return response, tty

    def lines(self) -> Iterator[LogLine]:
        """Blocking: every line until the log ends or `close()` is called."""
        for batch in self.batches():
            yield from batch

    def batches(self, opened: threading.Event | None = None) -> Iterator[list[LogLine]]:
        """Blocking: the lines of each chunk read from the engine, as one list.

        A flooding container delivers thousands of lines per read; handing them on per
        chunk keeps the per-line cost (locks, wake-ups) off the hot path. `opened` is set
        once the engine answered: a following stream sees every line written after it.
        """
        for runs in self.runs(opened):
            batch = [parse_line(name, raw) for name, run in runs for raw in run.split(b"\n")[:-1]]
            if batch:
                yield batch

    def runs(self, opened: threading.Event | None = None) -> Iterator[list[tuple[str, bytes]]]:
        """Blocking: each read from the engine as runs of whole raw lines, in log order.

        A run is (stream name, bytes): consecutive lines of one stream, each one as the
        engine wrote it ("<RFC 3339 time> <text>") and ending in a newline; nothing is
        decoded. A line longer than MAX_LINE without its end yet comes in pieces. The log
        collector works on runs (a bulk replace or regex per run costs less than a Python
        object per line); `batches` splits them into LogLines.
        """
        try:
            response, tty = self._open()
        finally:
            if opened is not None:
                opened.set()
        self._response = response
        if self._closed.is_set():
            self.close()
            return
        demux = None if tty else self._demultiplexer()
        splitter = _LineSplitter()
        for chunk in _raw_chunks(response, self._closed):
            frames = [("stdout", chunk)] if demux is None else demux.feed(chunk)
            runs = splitter.feed(frames)
            if runs:
                yield runs
        rest = splitter.flush()
        if rest:
            yield rest

    def _demultiplexer(self) -> _Demultiplexer:
        return _Demultiplexer()

    def close(self) -> None:
        self._closed.set()
        _close_response(self._response)


def _raw_chunks(response: Any, closed: threading.Event) -> Iterator[bytes]:
    """The body as it arrives, in large reads.

    The engine sends each log line as its own HTTP chunk; reading through urllib3 would
    return one line per call. Reading the socket's buffered file and undoing the chunked
    encoding here returns everything that has arrived, thousands of lines per read.
    """
    stream = _body_file(response)
    chunked = response.headers.get("Transfer-Encoding", "").lower() == "chunked"
    decoder = _ChunkedDecoder() if chunked else None
    while not closed.is_set():
        try:
            data = stream.read1(READ_SIZE)
        except Exception:  # noqa: BLE001 - a shut-down socket ends the stream
            return
        if not data:
            return
        if decoder is not None:
            data = decoder.feed(data)
        if data:
            yield data
        if decoder is not None and decoder.done:
            return


def _body_file(response: Any) -> Any:
    """The buffered socket file under the response (headers read, body untouched)."""
    raw = response.raw
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    return fp if fp is not None and hasattr(fp, "read1") else raw


class _ChunkedDecoder:
    """Undoes HTTP/1.1 chunked transfer encoding over arbitrary slices of the body.

    The engine sends each log line as a chunk of its own: the loop does one `find` and
    one slice per chunk, and keeps only an unfinished size line between calls.
    """

    def __init__(self) -> None:
        self.rest = b""  # an unfinished size line (or CRLF) from the previous call
        self.left = 0  # payload bytes of the current chunk still to come
        self.crlf_due = 0  # bytes of the CRLF after a chunk's payload still to skip
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.rest:
            data, self.rest = self.rest + data, b""
        out: list[bytes] = []
        pos = self._finish_chunk(data, out)
        size = len(data)
        while pos < size and not self.done:
            end = data.find(b"\r\n", pos)
            if end < 0:
                self.rest = data[pos:]
                break
            length = _chunk_size(data[pos:end])
            start, stop = end + 2, end + 2 + length
            if not length:
                self.done = True
            elif stop + 2 <= size:  # the whole chunk and its CRLF: the usual case
                out.append(data[start:stop])
                pos = stop + 2
            else:
                self.left, self.crlf_due = length, 2
                pos = self._finish_chunk(data, out, start)
        return b"".join(out)

    def _finish_chunk(self, data: bytes, out: list[bytes], pos: int = 0) -> int:
        """Take what `data` holds of the chunk begun earlier (its payload, then its CRLF);
        where the next chunk starts."""
        if self.left:
            take = min(self.left, len(data) - pos)
            out.append(data[pos : pos + take])
            pos, self.left = pos + take, self.left - take
        if self.crlf_due and not self.left:
            skip = min(self.crlf_due, len(data) - pos)
            pos, self.crlf_due = pos + skip, self.crlf_due - skip
        return pos if not (self.left or self.crlf_due) else len(data)


def _chunk_size(line: bytes) -> int:
    try:
        return int(line, 16)
    except ValueError:  # an extension (";name=value"), or nothing
        return int(line.split(b";")[0].strip() or b"0", 16)


class _Demultiplexer:
    """Docker's 8-byte framed stream, fed chunk by chunk: (stream name, payload) pairs.

    Consecutive frames of one stream are joined into one payload while each ends a line:
    a frame without its newline (a piece of a line longer than the engine's 16 KiB
    message) ends its payload, so the line splitter cuts over-long lines where the
    engine did."""

    names = STREAM_NAMES

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        data = self.rest + chunk if self.rest else chunk
        runs: list[tuple[str, bytes]] = []
        parts: list[bytes] = []
        name, whole, pos, size, unpack = "", True, 0, len(data), HEADER.unpack_from
        names = self.names
        while size - pos >= HEADER.size:
            kind, length = unpack(data, pos)
            end = pos + HEADER.size + length
            if end > size:
                break
            stream = names.get(kind, "stdout")
            if stream != name or not whole:
                if parts:
                    runs.append((name, b"".join(parts)))
                name, parts = stream, []
            parts.append(data[pos + HEADER.size : end])
            whole, pos = data[end - 1] == NEWLINE, end
        if parts:
            runs.append((name, b"".join(parts)))
        self.rest = data[pos:]
        return runs


class EngineMessageDemultiplexer(_Demultiplexer):
    """A manager's service or task log: frames of stream 3 are the engine's own words
    ("node is not available"), named "engine" so a reader never takes them for what the
    container printed."""

    names = {**STREAM_NAMES, 3: "engine"}


class _LineSplitter:
    """Whole lines per stream, as runs of raw lines (each ending in a newline); an
    unfinished line waits for the rest of it, up to MAX_LINE bytes."""

    def __init__(self) -> None:
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, frames: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        runs: list[tuple[str, bytes]] = []
        for name, payload in frames:
            data = self.pending[name] + payload if self.pending[name] else payload
            cut = data.rfind(b"\n") + 1
            if len(data) - cut > MAX_LINE:
                self.pending[name] = b""
                runs.append((name, data + b"\n"))
                continue
            self.pending[name] = data[cut:]
            if cut:
                runs.append((name, data[:cut]))
        return runs

    def flush(self) -> list[tuple[str, bytes]]:
        rest = [(name, raw + b"\n") for name, raw in self.pending.items() if raw]
        self.pending = {"stdout": b"", "stderr": b""}
        return rest


def parse_line(name: str, raw: bytes) -> LogLine:
    """One raw line of a log read with timestamps: its stream, engine time and text
    (no time: a piece of an over-long line)."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    ts, sep, rest = text.partition(" ")
    if sep and len(ts) >= 20 and ts[4:5] == "-" and ts[10:11] == "T":
        return LogLine(name, ts, rest)
    return LogLine(name, "", text)


# How the runtime words an exec it refused (the first output of the exec's TTY).
_EXEC_REFUSED = ("OCI runtime exec failed", "exec failed:", "OCI runtime error")


def describe_exec_failure(text: str, shell: str) -> str | None:
    """A sentence for an exec the runtime refused, from the raw text it printed (or an
    engine error's message); None when `text` is not such a refusal.

    'OCI runtime exec failed: exec failed: ... exec: "/bin/bash": stat /bin/bash: no
    such file or directory: unknown' -> '/bin/bash does not exist in this container.'
    """
    lowered = text.lower()
    if "is not running" in lowered or "is paused" in lowered or "is restarting" in lowered:
        return "The container is not running any more: no shell can start in it."
    if not any(marker.lower() in lowered for marker in _EXEC_REFUSED):
        return None
    if "no such file or directory" in lowered or "executable file not found" in lowered:
        return f"{shell} does not exist in this container: choose another shell."
    if "permission denied" in lowered:
        return f"{shell} cannot be run by the container's user (permission denied)."
    return f"The container's runtime could not start {shell}."


class ShellSession:
    """`docker exec -it <shell>` as the container's own user (never privileged)."""

    def __init__(
        self, engine: DockerEngine, container_id: str, shell: str, marker: str, cols: int, rows: int
    ) -> None:
        self.engine = engine
        self.container_id = container_id
        self.shell = shell
        self.marker = marker
        self.cols, self.rows = cols, rows
        self.exec_id = ""
        self._sock: Any = None
        self._raw: Any = None

    def start(self) -> None:
        api = self.engine._docker.api
        with self.engine._errors():
            made = api.exec_create(
                self.container_id,
                [self.shell],
                stdin=True,
                tty=True,
                privileged=False,
                environment={"TERM": "xterm-256color", "BERTH_SHELL_SESSION": self.marker},
            )
            self.exec_id = made["Id"]
            self._sock = api.exec_start(self.exec_id, tty=True, socket=True)
        self._raw = getattr(self._sock, "_sock", self._sock)
        self._raw.settimeout(None)
        self.resize(self.cols, self.rows)

    def read(self, size: int = READ_SIZE) -> bytes:
        """Blocking: the next output bytes (at most `size`, which the caller's flow control
        chooses), b"" when the shell ended or the socket closed."""
        try:
            return self._raw.recv(size)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._raw.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        api = self.engine._docker.api
        try:
            with self.engine._errors():
                api.exec_resize(self.exec_id, height=rows, width=cols)
        except EngineError:
            pass  # resizing a shell that just ended is harmless

    def exit_code(self) -> int | None:
        api = self.engine._docker.api
        try:
            with self.engine._errors():
                info = api.exec_inspect(self.exec_id)
        except EngineError:
            return None
        return None if info.get("Running") else info.get("ExitCode")

    def running(self) -> bool:
        api = self.engine._docker.api
        try:
            with self.engine._errors():
                return bool(api.exec_inspect(self.exec_id).get("Running"))
        except EngineError:
            return False

    def close(self) -> None:
        """Hang the TTY up; kill what the session left running (same user, no privilege)."""
        if self._sock is not None:
            _shutdown(self._sock)
        if not self.exec_id:
            return
        deadline = time.monotonic() + 1.0
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            self._kill_session()

    def _kill_session(self) -> None:
        script = (
            "for p in /proc/[0-9]*; do "
            f"grep -qs 'BERTH_SHELL_SESSION={self.marker}' $p/environ && kill -9 ${{p#/proc/}}; "
            "done; true"
        )
        api = self.engine._docker.api
        try:
            with self.engine._errors():
                made = api.exec_create(self.container_id, ["/bin/sh", "-c", script])
                api.exec_start(made["Id"])
        except EngineError:
            pass


class StatsStream:
    """`docker stats` of one container, reduced to the figures the pages show."""

    def __init__(self, engine: DockerEngine, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id
        self._response: Any = None
        self._closed = threading.Event()

    def samples(self) -> Iterator[dict[str, Any]]:
        """Blocking: one summary per engine sample (about every second)."""
        import json

        api = self.engine._docker.api
        with self.engine._errors():
            response = api._get(
                api._url("/containers/{0}/stats", self.container_id),
                params={"stream": 1},
                stream=True,
            )
            api._raise_for_status(response)
            _wait_forever(api, response)
        self._response = response
        try:
            for line in response.iter_lines():
                if self._closed.is_set():
                    return
                if line:
                    yield summarize_stats(json.loads(line))
        except Exception:  # noqa: BLE001 - a closed socket ends the stream
            return

    def close(self) -> None:
        self._closed.set()
        _close_response(self._response)


def summarize_stats(raw: dict[str, Any]) -> dict[str, Any]:
    """CPU %, memory, network and block I/O from one raw engine sample."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    cpu_percent = cpu_delta / system_delta * cpus * 100.0 if system_delta > 0 else 0.0
    memory = raw.get("memory_stats") or {}
    usage = memory.get("usage", 0) - (memory.get("stats") or {}).get("inactive_file", 0)
    limit = memory.get("limit", 0)
    networks = (raw.get("networks") or {}).values()
    blkio = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "cpu_percent": round(max(cpu_percent, 0.0), 2),
        "online_cpus": cpus,
        "memory": {
            "usage": max(usage, 0),
            "limit": limit,
            "percent": round(usage / limit * 100.0, 2) if limit else 0.0,
        },
        "net": {
            "rx_bytes": sum(n.get("rx_bytes", 0) for n in networks),
            "tx_bytes": sum(n.get("tx_bytes", 0) for n in networks),
        },
        "block": {
            "read_bytes": _blkio(blkio, "read"),
            "write_bytes": _blkio(blkio, "write"),
        },
        "pids": (raw.get("pids_stats") or {}).get("current", 0),
    }


def stats_sample(raw: dict[str, Any]) -> dict[str, Any]:
    """`summarize_stats` of a one-shot sample (its CPU % is 0: there is no previous
    sample in it) plus the counters the metrics collector keeps: the container's
    cumulative CPU time in nanoseconds, and whether the engine measured anything (a
    container that stopped meanwhile answers with empty figures)."""
    summary = summarize_stats(raw)
    cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
    summary["cpu_ns"] = int(cpu.get("total_usage") or 0)
    summary["measured"] = bool(raw.get("memory_stats")) or bool(cpu)
    return summary


def _blkio(entries: list[dict[str, Any]], op: str) -> int:
    return sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == op)


def container_running(engine: EngineDriver, container_id: str) -> bool:
    """Whether the container is running now (False when it is gone)."""
    try:
        return engine.inspect_container(container_id).state == "running"
    except EngineError as exc:
        if exc.not_found:
            return False
        raise
