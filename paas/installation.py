"""This installation's identity on shared Docker engines.

Every engine object Berth creates carries `io.berth.installation=<id>` and has the id in
its name; every list, adoption and orphan removal filters on it. Two Berths (a portal and
a benchmark, two test runs) sharing one engine therefore never see, reuse or remove each
other's containers, networks or volumes, even with identical database ids and slugs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path

ENV_VAR = "BERTH_INSTALLATION_ID"
# Lowercase letters and digits only: the id is embedded in engine names between hyphens,
# so it must never contain the separator itself.
VALID = re.compile(r"^[a-z0-9]{4,16}$")


class InstallationIdError(ValueError):
    pass


def _checked(value: str, where: str) -> str:
    value = value.strip()
    if not VALID.match(value):
        raise InstallationIdError(
            f"{where}: the installation id {value!r} must be 4-16 lowercase letters or digits."
        )
    return value


def load_installation_id(state_dir: Path) -> str:
    """BERTH_INSTALLATION_ID, else an id generated once into the state folder.

    Under pytest without an explicit id, each run is its own installation: the id is
    random and exported, so the workers and servers the tests start inherit it.
    """
    if os.environ.get(ENV_VAR):
        return _checked(os.environ[ENV_VAR], ENV_VAR)
    if os.environ.get("PYTEST_VERSION"):
        os.environ[ENV_VAR] = "t" + secrets.token_hex(5)
        return os.environ[ENV_VAR]
    path = state_dir / "installation_id"
    if not path.exists():
        # Written whole under a temporary name, then linked into place: the web server,
        # worker and beat starting together all read the same complete id.
        fd, temporary = tempfile.mkstemp(dir=state_dir, prefix=".installation_id.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(6) + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return _checked(path.read_text(), str(path))
