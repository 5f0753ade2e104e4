"""Fixtures for engine tests: the real Docker engine, a tiny busybox image, loopback servers.

Every image and container made here carries the label io.berth.test=1 and a label with
this run's id, and is removed at the end of the session, even after a failure.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_cli import docker as docker_cli  # noqa: F401 - used by test modules

#: Fixtures that need the real engine: a test using one must be marked `engine`
#: (tests/conftest.py checks it).
FIXTURE_KINDS = {"busybox_image": ("engine",), "run_container": ("engine",)}

RUN_ID = uuid.uuid4().hex[:12]
RUN_LABEL = "io.berth.test.run"
TEST_IMAGE = f"berth-test-busybox:{RUN_ID}"
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["sleep", "300"]
"""


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory) -> Iterator[str]:
    """A FROM-scratch image holding Debian's static busybox, built once per session."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is not installed (make bootstrap installs it)"
    context = tmp_path_factory.mktemp("busybox-image")
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(DOCKERFILE)
    docker_cli(
        "build",
        "-q",
        "-t",
        TEST_IMAGE,
        "--label",
        "io.berth.test=1",
        "--label",
        f"{RUN_LABEL}={RUN_ID}",
        str(context),
    )
    try:
        yield TEST_IMAGE
    finally:
        ids = docker_cli("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN_ID}", check=False)
        if ids:
            docker_cli("rm", "-f", *ids.split(), check=False)
        docker_cli("rmi", "-f", TEST_IMAGE, check=False)


@pytest.fixture
def run_container(busybox_image) -> Iterator:
    """Start a container of the test image with extra labels; removed after the test."""
    started: list[str] = []

    def run(name: str, labels: dict[str, str]) -> str:
        flags = [f"--label={k}={v}" for k, v in labels.items()]
        cid = docker_cli(
            "run", "-d", "--name", f"berth-test-{RUN_ID}-{name}", *flags, busybox_image
        )
        started.append(cid)
        return cid

    yield run
    if started:
        docker_cli("rm", "-f", *started, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


class _Refuse(http.server.BaseHTTPRequestHandler):
    """Answers every request with 403, like an engine behind a proxy that says no."""

    def do_GET(self) -> None:
        body = b'{"message": "forbidden by test server"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _serve(server: http.server.HTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing_server() -> Iterator[int]:
    yield from _serve(http.server.HTTPServer(("127.0.0.1", 0), _Refuse))


@pytest.fixture
def tls_refusing_server(tmp_path) -> Iterator:
    """An HTTPS server on loopback that demands a client certificate from `ca`."""
    from tests.hosts.pki import ThrowawayCA

    ca = ThrowawayCA()
    server_pair = ca.server()
    files = {}
    for name, text in [("ca", ca.cert), ("cert", server_pair.cert), ("key", server_pair.key)]:
        files[name] = tmp_path / f"server-{name}.pem"
        files[name].write_text(text)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["cert"], files["key"])
    context.load_verify_locations(files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Refuse)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    for port in _serve(httpd):
        yield ca, port


def missing_socket(tmp_path: Path) -> str:
    return f"unix://{tmp_path / 'no-engine' / 'docker.sock'}"
