"""Garbage collection: delete the blobs no tag references any more, and say how much
disk that really freed.

Deleting a tag only removes the manifest link; the layers stay on disk until
distribution's `garbage-collect` runs, and it must not run while pushes happen (a layer
uploaded but not yet referenced would be deleted). So, run by the worker:

1. the running registry (found by its pidfile, "PID STARTTIME" as deploy/lib.sh writes
   it) is restarted with the same command line,
   working folder and environment plus REGISTRY_STORAGE_MAINTENANCE_READONLY, so pulls go
   on and pushes are refused meanwhile (no need to know how it was started);
2. `docker-registry garbage-collect --delete-untagged <config>` runs;
3. the registry is restarted as before.

The bytes freed are measured on disk (allocated blocks under the storage folder) before
and after, and reported in a platform Event. With no registry running, the collection
runs directly (a stopped registry is as safe as a read-only one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from django.conf import settings

from apps.activity.services import record_event
from apps.registry import config

REGISTRY_BINARY = "/usr/bin/docker-registry"
READONLY_ENV = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
GC_TIMEOUT = 3600


class GarbageCollectionError(Exception):
    pass


@dataclass(frozen=True)
class RegistryProcess:
    """How the running registry was started, read from /proc."""

    pid: int
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout: str
    stderr: str

    @property
    def config_path(self) -> Path:
        return Path(self.cwd, self.argv[-1])


@dataclass(frozen=True)
class GcResult:
    before: int
    after: int
    output: str
    readonly: bool

    @property
    def freed(self) -> int:
        return max(0, self.before - self.after)


def pidfile() -> Path:
    return Path(settings.BERTH_REGISTRY_PIDFILE)


def starttime(pid: int) -> str:
    """Field 22 of /proc/PID/stat: with the pid, names one process even if pids are reused."""
    stat = Path("/proc", str(pid), "stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def write_pidfile(pid: int) -> None:
    """The pidfile in deploy/lib.sh's format, "PID STARTTIME", so berth_stop can stop it."""
    path = pidfile()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid} {starttime(pid)}\n")
    tmp.replace(path)


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under `path` (what `du` reports), 0 when absent."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def storage_root(config_path: Path) -> Path:
    data = yaml.safe_load(config_path.read_text()) or {}
    root = ((data.get("storage") or {}).get("filesystem") or {}).get("rootdirectory")
    return Path(root) if root else config.data_dir()


def running_registry() -> RegistryProcess | None:
    """The registry process named by the pidfile, if it is alive and is the registry."""
    try:
        pid = int(pidfile().read_text().split()[0])
        proc = Path("/proc", str(pid))
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        raw_env = (proc / "environ").read_bytes().split(b"\0")
        cwd = os.readlink(proc / "cwd")
        stdout, stderr = os.readlink(proc / "fd" / "1"), os.readlink(proc / "fd" / "2")
    except (OSError, ValueError):
        return None
    if not argv or "serve" not in argv or not argv[0].endswith("registry"):
        return None
    env = dict(item.decode().split("=", 1) for item in raw_env if b"=" in item)
    return RegistryProcess(pid, argv, cwd, env, stdout, stderr)


def _output(target: str):
    return open(target, "ab") if target.startswith("/") and Path(target).exists() else None  # noqa: SIM115


def _alive(pid: int) -> bool:
    """Running (a zombie whose parent has not reaped it yet counts as stopped)."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_exit(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child (a previous restart): reap it
        if not _alive(pid):
            return
        time.sleep(0.05)
    raise GarbageCollectionError(f"The registry (pid {pid}) did not stop.")


def _wait_ready(addr: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://{addr}/v2/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise GarbageCollectionError(f"The registry did not come back at {addr}.")


def restart(process: RegistryProcess, readonly: bool) -> RegistryProcess:
    """Stop the registry and start it again the same way, read-only or not."""
    os.kill(process.pid, signal.SIGTERM)
    _wait_exit(process.pid)
    env = {k: v for k, v in process.env.items() if k != READONLY_ENV}
    if readonly:
        env[READONLY_ENV] = '{"enabled": true}'
    stdout, stderr = _output(process.stdout), _output(process.stderr)
    child = subprocess.Popen(  # noqa: S603 -- the registry's own argv, read from /proc
        process.argv,
        cwd=process.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout or subprocess.DEVNULL,
        stderr=stderr or subprocess.DEVNULL,
        start_new_session=True,
    )
    for handle in (stdout, stderr):
        if handle:
            handle.close()
    write_pidfile(child.pid)
    _wait_ready(addr_of(process.config_path))
    return RegistryProcess(
        child.pid, process.argv, process.cwd, env, process.stdout, process.stderr
    )


def addr_of(config_path: Path) -> str:
    data = yaml.safe_load(config_path.read_text()) or {}
    return (data.get("http") or {}).get("addr") or config.registry_addr()


def run_garbage_collect(config_path: Path) -> str:
    result = subprocess.run(  # noqa: S603
        [REGISTRY_BINARY, "garbage-collect", "--delete-untagged", str(config_path)],
        capture_output=True,
        text=True,
        timeout=GC_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise GarbageCollectionError(
            f"garbage-collect failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


def default_config_path() -> Path:
    return Path(settings.BERTH_REGISTRY_CONFIG)


def collect(actor: Any = None) -> GcResult:
    """Run one garbage collection (registry read-only meanwhile) and record an Event."""
    process = running_registry()
    config_path = process.config_path if process else default_config_path()
    root = storage_root(config_path)
    before = disk_usage(root)
    try:
        if process is not None:
            process = restart(process, readonly=True)
        try:
            output = run_garbage_collect(config_path)
        finally:
            if process is not None:
                restart(process, readonly=False)
    except (GarbageCollectionError, OSError, subprocess.TimeoutExpired) as exc:
        record_event("registry.gc", actor=actor, outcome="failure", message=str(exc)[:500])
        raise
    result = GcResult(before, disk_usage(root), output, readonly=process is not None)
    record_event(
        "registry.gc",
        actor=actor,
        message=f"Garbage collection freed {result.freed} bytes on disk.",
        data={"before": result.before, "after": result.after, "freed": result.freed},
    )
    return result
