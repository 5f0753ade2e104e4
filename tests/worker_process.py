"""A real Celery worker started by a test: wait until it is ready, stop it for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def wait_ready(worker: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Until the worker's log says " ready."; its log's tail in the error otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the Celery worker exited:\n{log_path.read_text()[-3000:]}")
        if " ready." in log_path.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the Celery worker did not get ready in {timeout}s:\n{log_path.read_text()[-3000:]}"
    )


def stop(worker: subprocess.Popen, grace: float = 30) -> None:
    """Warm shutdown (finish the task in hand) within `grace`, then kill the worker's own
    process group (it was started with start_new_session)."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
