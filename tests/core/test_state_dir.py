"""The state folder, the SQLite database and the secret key are owner-only from the start.

A fresh Berth process is started with a permissive umask (022, the usual default) and an
empty BERTH_STATE_DIR; what it creates must still be unreadable by anyone else.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from paas.settings import private_dir, private_file

REPO = Path(__file__).resolve().parents[2]
START_BERTH = """
import os
os.umask(0o022)
os.environ["DJANGO_SETTINGS_MODULE"] = "paas.settings"
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE probe (x integer)")
    cursor.execute("INSERT INTO probe VALUES (1)")
print(connection.settings_dict["NAME"])
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def start_berth(state: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL",)}
    env.pop("DJANGO_SECRET_KEY", None)
    env["BERTH_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-c", START_BERTH],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_fresh_state_folder_is_private_to_the_berth_user(tmp_path):
    state = tmp_path / "fresh" / "state"

    result = start_berth(state)

    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == state / "berth.sqlite3"
    assert mode(state) == 0o700
    assert mode(state / "secret_key") == 0o600
    assert mode(state / "berth.sqlite3") == 0o600
    loose = [
        str(path.relative_to(state))
        for path in state.rglob("*")
        if mode(path) & (stat.S_IRWXG | stat.S_IRWXO)
    ]
    assert loose == []  # the -wal and -shm files too


def test_an_existing_loose_state_folder_is_tightened(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "secret_key").write_text("an-old-key-from-an-earlier-version")
    (state / "secret_key").chmod(0o644)

    result = start_berth(state)

    assert result.returncode == 0, result.stderr
    assert mode(state) == 0o700
    assert mode(state / "secret_key") == 0o600
    assert (state / "secret_key").read_text() == "an-old-key-from-an-earlier-version"


def test_private_file_is_never_seen_half_written_by_racing_processes(tmp_path):
    """Web, worker and beat start together: all of them end up with one and the same key."""
    key_file = tmp_path / "secret_key"
    won: list[bool] = []

    def make(value: str) -> None:
        won.append(private_file(key_file, value))

    threads = [threading.Thread(target=make, args=(f"key-{n}" * 20,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert won.count(True) == 1
    assert key_file.read_text() in {f"key-{n}" * 20 for n in range(8)}
    assert mode(key_file) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary left


def test_private_dir_leaves_the_callers_umask_alone(tmp_path):
    before = os.umask(0o022)
    try:
        private_dir(tmp_path / "a" / "b")
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert mode(tmp_path / "a" / "b") == 0o700
