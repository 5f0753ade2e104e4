"""Interrupted transfers: a push cut off halfway and retried completes.

A small TCP proxy on loopback sits in front of the real registry (token auth by the
Berth under test) and drops a connection once about half of a large blob upload has
gone through it. What the registry (distribution 2.8) and docker 20.10 really do:

- `docker push` through the proxy: the layer's PATCH is cut (the registry answers 500,
  "client disconnected during blob PATCH"); the daemon retries the layer by itself
  ("Retrying in 5 seconds") with a NEW upload session (POST), the other blobs are not
  sent again, and the same `docker push` succeeds; the image pulled back is the one pushed.
- The registry's resumable uploads work at chunk granularity: once a PATCH has been
  acknowledged, a client on a new connection asks the upload's status (GET, `Range`)
  and sends the rest from that offset. A PATCH cut mid-body cannot be resumed: the
  registry kept the partial bytes, the client's last `_state` says otherwise, and the
  registry cancels that session (BLOB_UPLOAD_INVALID); a new session completes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import PASSWORD
from tests.registry.conftest import BUSYBOX

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

BLOB_MB = 16


class CuttingProxy:
    """Forwards loopback TCP to `upstream`; closes a connection once more than
    `cut_after` bytes went upstream on it, for the first `max_cuts` such connections."""

    def __init__(self, upstream: str, cut_after: int, max_cuts: int = 1) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_after = cut_after
        self.max_cuts = max_cuts
        self.cuts = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _should_cut(self, sent: int) -> bool:
        with self.lock:
            if sent > self.cut_after and self.cuts < self.max_cuts:
                self.cuts += 1
                return True
        return False

    def _pump(self, source: socket.socket, target: socket.socket, to_upstream: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                target.sendall(data)
                sent += len(data)
                if to_upstream and self._should_cut(sent):
                    break
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(autouse=True)
def settle_notifications(transactional_db) -> Iterator[None]:
    """The registry posts its events to the live server asynchronously: wait until they
    stop arriving, so that none lands while the test database is being flushed."""
    from apps.registry.models import RegistryEvent

    yield
    seen, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        count = RegistryEvent.objects.count()
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        time.sleep(0.2)


@pytest.fixture
def proxy(registry) -> Iterator[CuttingProxy]:
    server = CuttingProxy(registry.addr, cut_after=BLOB_MB * 1024 * 1024 // 2)
    yield server
    server.close()


@pytest.fixture
def big_image(tmp_path) -> Iterator[str]:
    """FROM scratch: busybox + BLOB_MB of random bytes (a layer that does not compress)."""
    shutil.copy(BUSYBOX, tmp_path / "busybox")
    (tmp_path / "payload.bin").write_bytes(os.urandom(BLOB_MB * 1024 * 1024))
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY payload.bin /payload.bin\n"
        'ENTRYPOINT ["/bin/busybox"]\n'
    )
    tag = f"berth-test/resumable:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(tmp_path)], check=True, timeout=120)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def image_id(ref: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def access_log(registry, repository: str, method: str, status: int) -> int:
    """How many `method` requests on the repository's blob uploads answered `status`."""
    pattern = re.compile(rf'"{method} /v2/{re.escape(repository)}/blobs/uploads/[^"]*" {status} ')
    return len(pattern.findall(registry.log.read_text(errors="replace")))


def test_docker_push_cut_halfway_and_retried_completes(
    registry, proxy, docker_cli, big_image, tenant_a, member
):
    login = docker_cli.run(
        "login", proxy.addr, "-u", member.username, "--password-stdin", stdin=PASSWORD
    )
    assert login.returncode == 0, login.stderr
    repository = f"acme/resumable-{uuid.uuid4().hex[:6]}"
    ref = docker_cli.tag(big_image, f"{proxy.addr}/{repository}:1")
    attempts = [docker_cli.push(ref)]
    if attempts[0].returncode != 0:  # the daemon gave up: a second `docker push` completes
        attempts.append(docker_cli.push(ref))
    for attempt in attempts:
        print(f"docker push -> {attempt.returncode}: {attempt.stdout[-400:]}{attempt.stderr}")
    assert proxy.cuts == 1, "the upload was never cut: BLOB_MB too small for cut_after?"
    assert attempts[-1].returncode == 0, attempts[-1].stderr
    # docker 20.10 retries the layer by itself ("Retrying in 5 seconds" ... "Pushed").
    assert "Retrying in" in attempts[0].stdout or len(attempts) == 2

    # The registry saw the cut PATCH fail, then a new upload session for the same layer.
    cut = access_log(registry, repository, "PATCH", 500)
    sessions = access_log(registry, repository, "POST", 202)
    print(f"registry: {cut} PATCH cut (500), {sessions} upload sessions (2 layers + config)")
    assert cut == 1
    assert sessions == 4, "one session per blob (busybox, payload, config) + one retry"

    direct = f"{registry.addr}/{repository}:1"
    assert docker_cli.login(registry, member.username, PASSWORD).returncode == 0
    docker_cli.tags.add(direct)
    original = image_id(big_image)
    docker_cli.forget(ref)
    pull = docker_cli.pull(direct)
    assert pull.returncode == 0, pull.stderr
    assert image_id(direct) == original


class Upload:
    """The registry's blob upload protocol over HTTP, with a Berth token (push, pull)."""

    def __init__(self, live_server, registry, member, repository: str) -> None:
        from django.conf import settings

        answer = requests.get(
            f"{live_server.url}/registry/token/",
            params={
                "service": settings.BERTH_REGISTRY_SERVICE,
                "scope": f"repository:{repository}:pull,push",
            },
            auth=(member.username, PASSWORD),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['token']}"}
        self.base = registry.url
        self.repository = repository

    def url(self, location: str) -> str:
        """Locations are absolute (built from the Host header); always go direct."""
        return self.base + "/v2/" + location.split("/v2/", 1)[1]

    def start(self, via: str | None = None) -> str:
        answer = requests.post(
            f"{via or self.base}/v2/{self.repository}/blobs/uploads/",
            headers=self.headers,
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        return answer.headers["Location"]

    def patch(self, location: str, data: bytes, offset: int, via: str | None = None):
        target = self.url(location)
        if via:
            target = via + "/v2/" + location.split("/v2/", 1)[1]
        return requests.patch(
            target,
            data=data,
            headers={
                **self.headers,
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(data) - 1}",
            },
            timeout=60,
        )

    def status(self, location: str):
        return requests.get(self.url(location), headers=self.headers, timeout=30)

    def finish(self, location: str, digest: str):
        return requests.put(
            self.url(location), params={"digest": digest}, headers=self.headers, timeout=60
        )

    def blob_size(self, digest: str) -> int | None:
        answer = requests.head(
            f"{self.base}/v2/{self.repository}/blobs/{digest}", headers=self.headers, timeout=30
        )
        return int(answer.headers["Content-Length"]) if answer.status_code == 200 else None


def random_blob() -> tuple[bytes, str]:
    blob = os.urandom(BLOB_MB * 1024 * 1024)
    return blob, "sha256:" + hashlib.sha256(blob).hexdigest()


def test_upload_resumes_on_a_new_connection_from_the_acknowledged_offset(
    registry, live_server, tenant_a, member
):
    """Chunked upload: the first half acknowledged, the connection gone, the client asks
    the upload's status on a new connection and sends the rest from the offset given."""
    upload = Upload(live_server, registry, member, f"acme/resume-{uuid.uuid4().hex[:6]}")
    blob, digest = random_blob()
    half = len(blob) // 2
    with requests.Session() as first_connection:
        location = upload.start()
        answer = first_connection.patch(
            upload.url(location),
            data=blob[:half],
            headers={**upload.headers, "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        location = answer.headers["Location"]

    status = upload.status(location)
    assert status.status_code == 204, status.text
    assert status.headers["Range"] == f"0-{half - 1}"
    rest = upload.patch(status.headers["Location"], blob[half:], half)
    assert rest.status_code == 202, rest.text
    done = upload.finish(rest.headers["Location"], digest)
    assert done.status_code == 201, done.text
    assert upload.blob_size(digest) == len(blob)


def test_patch_cut_mid_body_invalidates_the_session_and_a_new_upload_completes(
    registry, proxy, live_server, tenant_a, member
):
    """distribution 2.8 keeps the bytes of a PATCH cut mid-body but the client's last
    `_state` no longer matches them: the registry cancels that session
    (BLOB_UPLOAD_INVALID, "upload resumed at wrong offset"). The client starts a new
    session -- exactly what the docker daemon does on its retry."""
    upload = Upload(live_server, registry, member, f"acme/recut-{uuid.uuid4().hex[:6]}")
    blob, digest = random_blob()
    via = f"http://{proxy.addr}"
    location = upload.start(via)
    with pytest.raises(requests.ConnectionError):
        upload.patch(location, blob, 0, via=via)
    assert proxy.cuts == 1
    assert wait_for_log(registry, "client disconnected during blob PATCH")

    stale = upload.status(location)
    assert stale.status_code == 404, stale.text
    assert "BLOB_UPLOAD_INVALID" in stale.text

    location = upload.start()
    answer = upload.patch(location, blob, 0)
    assert answer.status_code == 202, answer.text
    assert upload.finish(answer.headers["Location"], digest).status_code == 201
    assert upload.blob_size(digest) == len(blob)


def wait_for_log(registry, text: str, seconds: float = 10) -> bool:
    """The registry handles the disconnect asynchronously; wait until it logged it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in registry.log.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False
