"""`make run` never silently uses something else on Berth's ports (deploy/lib.sh).

berth_check_port is run as run.sh runs it, in bash with deploy/lib.sh sourced: a port
held by a foreign listener stops the run with a message naming the process and the
variable that moves Berth; a port held by Berth's own service (its pid file under
$BERTH_STATE_DIR/run) is reused.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("no_admin_env")

REPO = Path(__file__).resolve().parents[2]
LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "s.listen()\n"
    "time.sleep(120)\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while not listening(port):
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.05)


def lib(state: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source deploy/lib.sh; {script}"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "BERTH_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def foreign_listener():
    """A python process that is not Berth's, listening on a loopback port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", LISTEN, str(port)])
    try:
        wait_listening(port)
        yield port, process.pid
    finally:
        process.kill()
        process.wait()


def test_a_foreign_listener_stops_the_run_and_says_what_and_how(tmp_path, foreign_listener):
    port, pid = foreign_listener

    result = lib(
        tmp_path,
        f'berth_check_port "the registry gate" 127.0.0.1:{port} BERTH_REGISTRY_ADDR registry-gate',
    )

    assert result.returncode != 0
    message = result.stderr
    assert f"port {port}" in message and "the registry gate" in message
    assert f"pid {pid}" in message and "python" in message  # what is in the way
    assert f"BERTH_REGISTRY_ADDR=127.0.0.1:{port + 100} make run" in message  # how to move


def test_the_portal_port_names_berth_port(tmp_path, foreign_listener):
    port, _ = foreign_listener
    result = lib(tmp_path, f'berth_check_port "Berth\'s portal" 127.0.0.1:{port} BERTH_PORT web')
    assert result.returncode != 0
    assert f"BERTH_PORT={port + 1} make run" in result.stderr


def test_a_free_port_passes(tmp_path):
    result = lib(tmp_path, f'berth_check_port "the registry gate" 127.0.0.1:{free_port()} X')
    assert result.returncode == 0, result.stderr


def test_berths_own_service_from_an_earlier_run_is_reused(tmp_path):
    port = free_port()
    script = tmp_path / "listen.py"
    script.write_text(LISTEN)
    started = lib(
        tmp_path,
        f'berth_spawn registry-gate "$BERTH_STATE_DIR/log/gate.log" {sys.executable} '
        f"{script} {port}",
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_listening(port)
        ours = lib(
            tmp_path,
            f'berth_check_port "the registry gate" 127.0.0.1:{port} BERTH_REGISTRY_ADDR '
            "registry-gate",
        )
        assert ours.returncode == 0, ours.stderr
        # The same listener is foreign to any other service of Berth.
        theirs = lib(
            tmp_path,
            f'berth_check_port "the registry" 127.0.0.1:{port} BERTH_REGISTRY_BACKEND_ADDR '
            "registry",
        )
        assert theirs.returncode != 0
        assert "BERTH_REGISTRY_BACKEND_ADDR" in theirs.stderr
    finally:
        lib(tmp_path, "berth_stop registry-gate 5")
    assert not listening(port)


def test_sourcing_lib_makes_the_state_folder_private(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)

    assert lib(state, "true").returncode == 0

    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "run").stat().st_mode & 0o077 == 0
