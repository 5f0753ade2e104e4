"""The frontier's HAProxy process: master-worker mode, driven through its master socket.

One directory holds everything of one frontier: `haproxy.cfg` (rendered by
apps/traffic/frontier.py), `master.sock` (the master CLI: `reload`, `show proc`),
`admin.sock` (the worker's runtime API, apps/traffic/runtime.py), `haproxy.pid` and
`haproxy.log`. `make run` starts the frontier with deploy/lib.sh (berth_frontier_start),
the tests with `start()` here; both stop what they started.

A reload is seamless: the master re-executes itself on the new configuration, the new
worker takes the listening sockets from the old one over `admin.sock`
(`expose-fd listeners`), and the old worker finishes its requests in flight (bounded by
`hard-stop-after`). HAProxy 2.6's master answers `reload` with nothing, so success is
seen in `show proc`: a worker that was not there before.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HAPROXY = "haproxy"
CONFIG = "haproxy.cfg"
MASTER_SOCKET = "master.sock"
ADMIN_SOCKET = "admin.sock"
PIDFILE = "haproxy.pid"
LOGFILE = "haproxy.log"

# Processes started by `start()` in this Python process: reaped by `stop()`.
_children: dict[Path, subprocess.Popen] = {}


class FrontierProcessError(RuntimeError):
    """The frontier did not start, stop or reload as asked (the message says why)."""


@dataclass(frozen=True)
class Workers:
    """What `show proc` says: the master's reload count (and how many of them failed)
    and its current workers."""

    reloads: int
    failed: int
    current: frozenset[int]


def command(directory: Path, *argv: str) -> list[str]:
    """The argv that runs the frontier of `directory` in the foreground (master-worker)."""
    directory = Path(directory)
    return [
        HAPROXY,
        "-W",
        "-db",
        "-S",
        f"{directory / MASTER_SOCKET},mode,600",
        "-f",
        str(directory / CONFIG),
        "-p",
        str(directory / PIDFILE),
        *argv,
    ]


def socket_command(path: Path, line: str, timeout: float = 5.0) -> str:
    """Send one command to an HAProxy CLI socket (master or admin) and read the answer
    until the socket closes (`;quit`: the master CLI keeps a connection open otherwise)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line.encode() + b";quit\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def workers(directory: Path, timeout: float = 2.0) -> Workers | None:
    """The master's view of its workers; None when no master answers."""
    try:
        out = socket_command(Path(directory) / MASTER_SOCKET, "show proc", timeout=timeout)
    except OSError:
        return None
    reloads, failed, current, section = -1, 0, set(), ""
    for line in out.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").split()[0] if line.strip("# ") else ""
            continue
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdecimal():
            continue
        if fields[1] == "master":
            reloads = int(fields[2])
            found = re.search(r"\[failed: (\d+)\]", line)
            failed = int(found.group(1)) if found else 0
        elif fields[1] == "worker" and section == "workers":
            current.add(int(fields[0]))
    if reloads < 0:
        return None
    return Workers(reloads=reloads, failed=failed, current=frozenset(current))


def is_running(directory: Path) -> bool:
    """A master answers on the directory's master socket with at least one worker."""
    state = workers(directory)
    return state is not None and bool(state.current)


def start(directory: Path, addrs: tuple[str, ...] = (), timeout: float = 15.0) -> int:
    """Start the frontier of `directory` (its haproxy.cfg must exist) in its own session
    and wait until its master has a worker and every address in `addrs` (host:port)
    accepts connections. Returns the master's pid."""
    directory = Path(directory)
    if is_running(directory):
        raise FrontierProcessError(f"a frontier already runs in {directory}")
    (directory / MASTER_SOCKET).unlink(missing_ok=True)
    log = open(directory / LOGFILE, "ab")  # noqa: SIM115 - handed to the child
    try:
        child = subprocess.Popen(
            command(directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    _children[directory] = child
    deadline = time.monotonic() + timeout
    while not (is_running(directory) and all(_accepts(addr) for addr in addrs)):
        if child.poll() is not None or time.monotonic() > deadline:
            stop(directory)
            raise FrontierProcessError(
                f"the frontier in {directory} did not start: {_log_tail(directory)}"
            )
        time.sleep(0.05)
    return child.pid


def master_pid(directory: Path) -> int | None:
    """The master's pid from the pid file, if that process is alive."""
    try:
        pid = int((Path(directory) / PIDFILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def stop(directory: Path, timeout: float = 10.0) -> None:
    """Stop the frontier of `directory`: SIGTERM to its master (which stops its workers),
    SIGKILL to the session after `timeout`. Only a master this directory names."""
    directory = Path(directory)
    child = _children.pop(directory, None)
    pid = child.pid if child is not None else master_pid(directory)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid, child) and child is not None:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
    (directory / MASTER_SOCKET).unlink(missing_ok=True)


def reload(directory: Path, timeout: float = 15.0) -> Workers:
    """Reload the running frontier on its haproxy.cfg and wait for the new worker.

    Raises FrontierProcessError when no new worker appears in time (for example a
    listener that cannot be bound): the master keeps the old worker serving then.
    """
    directory = Path(directory)
    before = workers(directory)
    if before is None:
        raise FrontierProcessError(f"no frontier answers on {directory / MASTER_SOCKET}")
    # The master re-executes itself and may drop the CLI connection before answering.
    with contextlib.suppress(OSError):
        socket_command(directory / MASTER_SOCKET, "reload", timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after = workers(directory, timeout=1.0)
        if after is not None and after.failed > before.failed:
            break  # the master could not load it (and resumed the old worker)
        if after is not None and after.current and not (after.current & before.current):
            return after
        time.sleep(0.02)
    raise FrontierProcessError(
        f"the frontier did not take the new configuration: {_log_tail(directory)}"
    )


def check(config: Path) -> str:
    """`haproxy -c` on a configuration file: '' when valid, else HAProxy's complaint."""
    done = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 0:
        return ""
    output = (done.stderr + done.stdout).splitlines()
    alerts = [line for line in output if not line.startswith("[NOTICE]")]
    return "\n".join(alerts).strip() or f"haproxy -c exited {done.returncode}"


def _alive(pid: int, child: subprocess.Popen | None) -> bool:
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _accepts(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(directory: Path, lines: int = 15) -> str:
    try:
        text = (Path(directory) / LOGFILE).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"
