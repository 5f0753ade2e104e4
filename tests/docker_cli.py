"""The stock docker CLI against Berth's engine: how tests look at what Berth did.

Tests never import docker-py, so they see the engine the way an operator would.
"""

import subprocess

from django.conf import settings


def docker(*args: str, check: bool = True, timeout: int = 180) -> str:
    done = subprocess.run(
        ["docker", "-H", settings.BERTH_DOCKER_HOST, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()
