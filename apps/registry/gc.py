"""Garbage collection: delete the blobs no tag references any more, and say how much
disk that really freed.

Deleting a tag only removes the manifest link; the layers stay on disk until
distribution's `garbage-collect --delete-untagged` runs, and it must not run while pushes
happen (a layer uploaded but not yet referenced would be deleted). Only the script that
started the registry knows how it runs, so BERTH_REGISTRY_GC_COMMAND (by default
`deploy/registry.sh gc`, which is `berth_registry_gc` in deploy/lib.sh) restarts it
read-only (pulls go on, pushes are refused), collects, and restarts it read-write; with
no registry running it collects directly (a stopped registry is as safe as a read-only
one). The command prints the collector's report on stdout, and exits non-zero when the
collection or a restart failed (the registry is started read-write again either way).

The bytes freed are measured here, on disk (allocated blocks under the storage folder
named by BERTH_REGISTRY_CONFIG) before and after; `services.collect_garbage` records them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from apps.registry import config

GC_TIMEOUT = 3600


class GarbageCollectionError(Exception):
    pass


@dataclass(frozen=True)
class GcResult:
    before: int
    after: int
    output: str

    @property
    def freed(self) -> int:
        return max(0, self.before - self.after)


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


def storage_root(config_path: Path | None = None) -> Path:
    """The registry's storage folder, as its config.yml (BERTH_REGISTRY_CONFIG) names it."""
    path = Path(config_path or settings.BERTH_REGISTRY_CONFIG)
    data = yaml.safe_load(path.read_text()) or {}
    root = ((data.get("storage") or {}).get("filesystem") or {}).get("rootdirectory")
    return Path(root) if root else config.data_dir()


def run_command() -> str:
    """Run BERTH_REGISTRY_GC_COMMAND; the collector's report, or GarbageCollectionError
    with the end of what the command said on stderr."""
    result = subprocess.run(  # noqa: S603 -- the operator's configured command
        settings.BERTH_REGISTRY_GC_COMMAND,
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
