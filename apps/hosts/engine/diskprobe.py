"""How full the filesystem holding an engine's data is, measured from inside the engine.

The engine API reports no free space, and Berth reaches a host only through its engine
(remote ones too), so a short-lived probe container asks: with the overlay2, overlay,
fuse-overlayfs and vfs storage drivers a container's root filesystem is a directory
under the engine's data root (DockerRootDir), so `df /` inside it reports the
filesystem that holds the data root. Other drivers give the container a device or
dataset of its own (devicemapper, zfs), whose figures say nothing about the data root:
those hosts are not measured (btrfs is not accepted either: a subvolume's figures are
the whole filesystem's, but it has not been checked here).

The probe image is `FROM scratch` plus the Berth machine's own static busybox, built on
the engine from a tiny context sent with the request (no registry needed), tagged per
installation and content, and labelled as this installation's. The probe container
is labelled too, runs without network, capabilities or write access, in 16 MB, as
nobody, and the engine removes it when it exits.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.labels import installation_id, label_filters, managed_labels

#: Storage drivers whose container root filesystem is a directory on the data root.
MEASURABLE_DRIVERS = frozenset({"overlay2", "overlay", "fuse-overlayfs", "vfs"})
PROBE_REPOSITORY = "berth-probe/disk"
PROBE_ROLE = "disk-probe"
PROBE_MEMORY = 16 * 1024 * 1024
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
ENV PATH=/bin
USER 65534:65534
ENTRYPOINT ["/bin/busybox"]
"""
# Blocks in bytes, then inodes, of the container's root filesystem (POSIX `df` output).
PROBE_COMMAND = ["sh", "-c", "busybox df -P -B1 / && busybox df -P -i /"]


@dataclass(frozen=True)
class DiskUsage:
    """The data root's filesystem as `df` sees it. `free_bytes` is what an unprivileged
    writer may still use (df's Available); `used_percent` is df's Use%, used out of
    used plus available (blocks reserved for root count as neither)."""

    data_root: str
    storage_driver: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    inodes_total: int | None = None
    inodes_used: int | None = None

    @property
    def used_percent(self) -> float:
        return used_percent(self.used_bytes, self.free_bytes)

    @property
    def inodes_used_percent(self) -> float | None:
        return inodes_used_percent(self.inodes_total, self.inodes_used)


def used_percent(used_bytes: int, free_bytes: int) -> float:
    """df's Use%: used out of used plus available (root's reserve counts as neither)."""
    usable = used_bytes + free_bytes
    return used_bytes * 100.0 / usable if usable else 0.0


def inodes_used_percent(total: int | None, used: int | None) -> float | None:
    """Inodes in use, percent; None for a filesystem that has no inode count."""
    if not total or used is None:
        return None
    return used * 100.0 / total


def parse_df(output: str) -> tuple[tuple[int, int, int], tuple[int, int] | None]:
    """((total, used, available) bytes, (inodes, used inodes) or None) from the probe's
    output: two `df -P` tables (`-B1`, then `-i`), each a header and one line. A
    filesystem without inodes (btrfs says 0) gives None for them."""
    rows = [line.split() for line in output.splitlines() if line.strip()]
    tables = [i for i, row in enumerate(rows) if row and row[0] == "Filesystem"]
    if not tables:
        raise ValueError("no df table in the probe's output")
    blocks = _numbers(rows, tables[0])
    inodes = _numbers(rows, tables[1]) if len(tables) > 1 else None
    inode_figures = (inodes[0], inodes[1]) if inodes and inodes[0] > 0 else None
    return (blocks[0], blocks[1], blocks[2]), inode_figures


def _numbers(rows: list[list[str]], header: int) -> tuple[int, int, int]:
    """The three figures after the device name in the line under a header; a long device
    name may have wrapped the line (the figures then start the next row)."""
    if header + 1 >= len(rows):
        raise ValueError("a df table without its line")
    line = rows[header + 1]
    if len(line) < 4 and header + 2 < len(rows):
        line = line + rows[header + 2]
    try:
        return int(line[1]), int(line[2]), int(line[3])
    except (IndexError, ValueError):
        raise ValueError(f"not a df line: {' '.join(line)!r}") from None


@functools.lru_cache(maxsize=4)
def _context(path: str, mtime: float) -> tuple[bytes, str]:
    """The build context (a tar of the Dockerfile and busybox) and its content hash."""
    with open(path, "rb") as handle:
        busybox = handle.read()
    digest = hashlib.sha256(DOCKERFILE.encode() + busybox).hexdigest()[:12]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in (
            ("Dockerfile", DOCKERFILE.encode(), 0o644),
            ("busybox", busybox, 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), digest


def probe_context() -> tuple[bytes, str]:
    """The context from BERTH_PROBE_BUSYBOX (Debian's busybox-static), cached by mtime."""
    path = settings.BERTH_PROBE_BUSYBOX
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise EngineError(
            f"No static busybox at {path} for the disk probe ({exc.strerror}).", retryable=False
        ) from None
    return _context(path, mtime)


def probe_tag() -> str:
    """This installation's probe image for the current busybox (a new busybox, a new tag)."""
    return f"{PROBE_REPOSITORY}:{installation_id()}-{probe_context()[1]}"


def probe_labels() -> dict[str, str]:
    return managed_labels({"role": PROBE_ROLE})


class DiskProbe:
    """The driver's `data_root_usage`, mixed into the Docker drivers (it needs their
    `_docker` client and `_errors` translation)."""

    def data_root_usage(self) -> DiskUsage:
        """Measure the filesystem of the engine's data root (about one second: a probe
        container's whole life; the image is built once per installation and busybox)."""
        info = self._raw_info()  # type: ignore[attr-defined]
        driver = str(info.get("Driver") or "")
        root = str(info.get("DockerRootDir") or "")
        if driver not in MEASURABLE_DRIVERS:
            raise EngineError(
                f"The disk of the data root cannot be measured with the {driver!r} storage "
                "driver (a container's root is not on the data root's filesystem).",
                retryable=False,
            )
        tag = self._ensure_probe_image()
        output = self._run_probe(tag)
        try:
            (total, used, free), inodes = parse_df(output)
        except ValueError as exc:
            raise EngineError(
                f"The disk probe said something unexpected: {exc}", retryable=False
            ) from None
        return DiskUsage(
            data_root=root,
            storage_driver=driver,
            total_bytes=total,
            used_bytes=used,
            free_bytes=free,
            inodes_total=inodes[0] if inodes else None,
            inodes_used=inodes[1] if inodes else None,
        )

    def _ensure_probe_image(self) -> str:
        """Build this installation's probe image on the engine unless it is there."""
        tag = probe_tag()
        api = self._docker.api  # type: ignore[attr-defined]
        try:
            with self._errors():  # type: ignore[attr-defined]
                api.inspect_image(tag)
            return tag
        except EngineError as exc:
            if not exc.not_found:
                raise
        context, _ = probe_context()
        with self._errors():  # type: ignore[attr-defined]
            stream = api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=tag,
                labels=probe_labels(),
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            )
            _check_build(stream)
        self._forget_older_probe_images(tag)
        return tag

    def _forget_older_probe_images(self, current: str) -> None:
        """Untag this installation's probe images of an earlier busybox (a new busybox
        makes a new tag): without it each upgrade would leave one behind on every engine.
        Only images carrying this installation's probe labels are looked at; one still in
        use, or already gone, is left to the next build."""
        api = self._docker.api  # type: ignore[attr-defined]
        with self._errors():  # type: ignore[attr-defined]
            images = api.images(filters={"label": label_filters({"role": PROBE_ROLE})})
        older = {
            tag
            for image in images
            for tag in image.get("RepoTags") or []
            if tag.startswith(f"{PROBE_REPOSITORY}:") and tag != current
        }
        for tag in sorted(older):
            try:
                with self._errors():  # type: ignore[attr-defined]
                    api.remove_image(tag, noprune=False)
            except EngineError:
                continue

    def _run_probe(self, tag: str) -> str:
        """Create the probe, attach to its output before starting it (the engine removes
        it as soon as it exits), read to the end; remove it if anything went wrong."""
        api = self._docker.api  # type: ignore[attr-defined]
        host_config = api.create_host_config(
            auto_remove=True,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=PROBE_MEMORY,
            pids_limit=8,
        )
        name = f"berth-{installation_id()}-diskprobe-{uuid.uuid4().hex[:8]}"
        with self._errors():  # type: ignore[attr-defined]
            made = api.create_container(
                tag,
                command=PROBE_COMMAND,
                name=name,
                labels=probe_labels(),
                host_config=host_config,
                network_disabled=True,
            )
        done = False
        try:
            with self._errors():  # type: ignore[attr-defined]
                output = api.attach(made["Id"], stdout=True, stderr=True, stream=True, logs=True)
                api.start(made["Id"])
                text = b"".join(output).decode(errors="replace")
            done = True
            return text
        finally:
            if not done:  # not through `remove`: a Swarm driver refuses container calls
                self._remove(  # type: ignore[attr-defined]
                    lambda api: api.remove_container(made["Id"], v=True, force=True)
                )


def _check_build(stream: Iterable[dict[str, Any]]) -> None:
    for message in stream:
        if message.get("error"):
            raise EngineError(f"Cannot build the disk probe: {message['error']}", retryable=False)
