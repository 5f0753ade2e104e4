"""A real docker-registry (Debian's distribution 2.8) per test session, trusting the
Berth under test (pytest-django's live_server) as its token service, and the real
`docker` CLI with its own config folder, so no login is left in ~/.docker.

Images are tiny: FROM scratch with busybox, tagged 127.0.0.1:<port>/<tenant>/<repo>:<tag>
(docker treats 127.0.0.0/8 registries as insecure, so plain HTTP works).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apps.registry.config import portal_addr, write_config, write_gate_config

# The docker CLI drives the real engine: tests using these are marked `engine`
# (tests/conftest.py refuses them otherwise).
FIXTURE_KINDS = {"docker_cli": ("engine",), "tiny_image": ("engine",)}

REGISTRY_BIN = "/usr/bin/docker-registry"
REGISTRY_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "registry.sh"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
RUN_ID = uuid.uuid4().hex[:6]

pytestmark = pytest.mark.skipif(
    not (Path(REGISTRY_BIN).exists() and shutil.which("docker")),
    reason="needs Debian's docker-registry and the docker CLI",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RegistryServer:
    """A registry run by deploy/registry.sh with `state` as its BERTH_STATE_DIR, laid out
    as `make run` lays out its own (registry/config.yml and gate.cfg, run/registry.pid,
    log/registry.log), so garbage collection restarts it the way it was started."""

    addr: str
    root: Path
    state: Path

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def config(self) -> Path:
        return self.state / "registry" / "config.yml"

    @property
    def log(self) -> Path:
        return self.state / "log" / "registry.log"

    @property
    def pidfile(self) -> Path:
        return self.state / "run" / "registry.pid"

    @property
    def gc_command(self) -> list[str]:
        """BERTH_REGISTRY_GC_COMMAND for this registry."""
        return ["env", f"BERTH_STATE_DIR={self.state}", "bash", str(REGISTRY_SCRIPT), "gc"]

    def script(self, action: str) -> subprocess.CompletedProcess:
        """Run `deploy/registry.sh ACTION` on this registry's state folder."""
        return subprocess.run(
            ["bash", str(REGISTRY_SCRIPT), action],
            env={**os.environ, "BERTH_STATE_DIR": str(self.state)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ref(self, repository: str, tag: str = "1") -> str:
        return f"{self.addr}/{repository}:{tag}"


def free_port_pair() -> int:
    """A loopback port whose next port is free too: the gate and the registry behind it."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free loopback ports")


def start_registry(tmp: Path, public_url: str, *, auth: bool = True) -> RegistryServer:
    """Start docker-registry on loopback and, with `auth`, the gate (HAProxy) in front of
    it, through deploy/registry.sh as `make run` does (configs rendered here, on free
    ports); returns once /v2/ answers. `addr` is where clients go: the gate, or the
    registry itself for the benchmark's unauthenticated twin."""
    port = free_port_pair()
    addr, backend = f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"
    server = RegistryServer(addr=addr, root=tmp / "data", state=tmp)
    write_config(
        server.config,
        public_url=public_url,
        addr=backend if auth else addr,
        root=server.root,
        auth=auth,
    )
    if auth:
        write_gate_config(
            server.config.with_name("gate.cfg"),
            front=addr,
            backend=backend,
            portal=portal_addr(public_url),
        )
    started = server.script("serve")
    if started.returncode != 0:
        server.script("stop")
        raise RuntimeError(f"the registry did not start: {started.stderr[-2000:]}")
    return server


def starttime(pid: int) -> str:
    """Field 22 of /proc/PID/stat, as deploy/lib.sh records it beside the pid."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(") ", 1)[1].split()[19]


def stop_registry(server: RegistryServer) -> None:
    """Stop the registry its pidfile names (garbage collection may have restarted it)
    and its gate."""
    server.script("stop")
    shutil.rmtree(server.root, ignore_errors=True)


# The session's `registry` fixture is in tests/conftest.py: the integration and browser
# tests deploy the demo templates from it too, and one registry serves them all.


@dataclass
class DockerCLI:
    """The stock docker client with a private DOCKER_CONFIG; remembers tags to remove."""

    config_dir: Path
    tags: set[str] = field(default_factory=set)

    def run(self, *args: str, stdin: str | None = None, check: bool = False, timeout=120):
        env = {**os.environ, "DOCKER_CONFIG": str(self.config_dir)}
        result = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result

    def login(self, registry: RegistryServer, username: str, password: str):
        return self.run(
            "login", registry.addr, "--username", username, "--password-stdin", stdin=password
        )

    def logout(self, registry: RegistryServer):
        return self.run("logout", registry.addr)

    def tag(self, source: str, ref: str) -> str:
        self.run("tag", source, ref, check=True)
        self.tags.add(ref)
        return ref

    def push(self, ref: str):
        return self.run("push", ref)

    def pull(self, ref: str):
        self.tags.add(ref)
        return self.run("pull", ref)

    def forget(self, ref: str) -> None:
        """Remove a local tag so that a later pull really goes to the registry."""
        self.run("rmi", "--no-prune", ref)


@pytest.fixture
def docker_cli(tmp_path) -> Iterator[DockerCLI]:
    cli = DockerCLI(config_dir=tmp_path / "docker-config")
    cli.config_dir.mkdir()
    yield cli
    for ref in cli.tags:
        cli.run("rmi", ref)


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory) -> Iterator[str]:
    """A ~1 MB image FROM scratch with busybox; removed at the end of the session."""
    context = tmp_path_factory.mktemp("tiny-image")
    shutil.copy(BUSYBOX, context / "busybox")
    (context / "stamp").write_text(f"berth registry tests {RUN_ID}\n")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY stamp /stamp\n"
        'LABEL io.berth.test="registry"\nENTRYPOINT ["/bin/busybox"]\nCMD ["true"]\n'
    )
    tag = f"berth-test/registry-tiny:{RUN_ID}"
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    yield tag
    subprocess.run(["docker", "rmi", tag], capture_output=True)
