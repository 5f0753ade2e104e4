"""The demo images, built by deploy/build-images.sh and run on the real engine.

No Berth code here: plain `docker` commands check what the demo templates rely on
(health endpoints and Docker health, the guestbook's service-name networking and named
volume, the worker's logs and clean stop). Every container, network and volume gets the
labels io.berth.test=1 and a per-run id, and is removed at the end; images are kept.
Ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:8]
LABELS = ["--label", "io.berth.test=1", "--label", f"io.berth.test.run={RUN}"]
# The images check every 3 s after a 5 s start period; tests that wait for a health
# change check every second instead (the same check command, as a template could).
FAST_HEALTH = ("--health-interval", "1s", "--health-start-period", "0s")


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def run(name: str, image: str, *options: str) -> str:
    """Start a detached container; returns its name (unique to this test run)."""
    full = f"berth-test-{RUN}-{name}"
    docker("run", "-d", "--name", full, *LABELS, *options, image)
    return full


def inspect(container: str) -> dict:
    return json.loads(docker("inspect", container))[0]


def published(container: str, port: int = 8080) -> str:
    binding = inspect(container)["NetworkSettings"]["Ports"][f"{port}/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    return f"http://127.0.0.1:{binding['HostPort']}"


def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    """Status and body; follows redirects (as wget and browsers do)."""
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def health(container: str) -> str:
    return inspect(container)["State"].get("Health", {}).get("Status", "none")


def wait_health(container: str, status: str, timeout: float = 30) -> None:
    wait_for(lambda: health(container) == status, f"{container} to be {status}", timeout)


def wait_http(url: str, timeout: float = 10) -> None:
    def answers() -> bool:
        try:
            return get(url)[0] < 500
        except OSError:
            return False

    wait_for(answers, f"{url} to answer", timeout)


@pytest.fixture(scope="module", autouse=True)
def engine() -> Iterator[None]:
    """The engine answers and the images are built; everything created is removed after."""
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=10)
    except (AssertionError, OSError, subprocess.TimeoutExpired):
        pytest.skip("no Docker engine answers (source deploy/lib.sh && berth_engine_start)")
    subprocess.run(
        [str(REPO / "deploy" / "build-images.sh")], check=True, capture_output=True, timeout=600
    )
    yield
    for kind in ("container", "network", "volume"):
        ids = docker(kind, "ls", "-q", *(["-a"] if kind == "container" else []),
                     "--filter", f"label=io.berth.test.run={RUN}", check=False).split()  # fmt: skip
        if ids:
            docker(kind, "rm", *(["-f"] if kind == "container" else []), *ids, check=False)


@pytest.fixture(scope="module")
def worker() -> tuple[str, float]:
    """Started first, so that ten ticks have passed by the time the worker test runs."""
    return run("worker", "berth-demo/worker:1.0"), time.monotonic()


def test_build_is_idempotent_and_images_are_small_and_unprivileged(worker):
    result = subprocess.run(
        [str(REPO / "deploy" / "build-images.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    images = docker_list_images()
    assert result.stderr.count("up to date") == len(images), result.stderr
    for image in images:
        info = json.loads(docker("image", "inspect", image))[0]
        labels = info["Config"]["Labels"]
        assert len(labels["io.berth.build-hash"]) == 64
        assert labels["org.opencontainers.image.version"] == image.rsplit(":", 1)[1]
        assert info["Config"]["User"] == "1000:1000"
        assert info["Config"]["Healthcheck"]["Test"]
        assert info["Size"] < 3 * 1024 * 1024, f"{image} is {info['Size']} bytes"


def docker_list_images() -> list[str]:
    script = REPO / "deploy" / "build-images.sh"
    return subprocess.run([str(script), "--list"], capture_output=True, text=True).stdout.split()


def test_web_page_versions_health_and_unhealthy_marker():
    old = run("web10", "berth-demo/web:1.0", "-p", "127.0.0.1::8080", "-e", "MESSAGE=Hi <you>",
              *FAST_HEALTH)  # fmt: skip
    new = run("web11", "berth-demo/web:1.1", "-p", "127.0.0.1::8080", "-e", "GREETING=Howdy",
              "-e", "THEME=dark")  # fmt: skip
    for container in (old, new):
        wait_http(published(container) + "/cgi-bin/info")

    status, body = get(published(old) + "/health")
    assert (status, body.strip()) == (200, "ok")
    info = json.loads(get(published(old) + "/cgi-bin/info")[1])
    assert info["version"] == "1.0" and info["message"] == "Hi <you>"
    assert info["hostname"] == inspect(old)["Config"]["Hostname"]
    page = get(published(old) + "/")[1]
    assert "Hi &lt;you&gt;" in page and info["hostname"] in page and 'data-badge="blue"' in page

    info = json.loads(get(published(new) + "/cgi-bin/info")[1])
    assert (info["version"], info["greeting"], info["theme"]) == ("1.1", "Howdy", "dark")
    assert 'data-badge="green"' in get(published(new) + "/")[1]

    wait_health(old, "healthy")
    docker("exec", old, "touch", "/tmp/unhealthy")
    status, body = get(published(old) + "/health")
    assert status == 503 and "unhealthy" in body
    wait_health(old, "unhealthy")
    docker("exec", old, "rm", "/tmp/unhealthy")
    wait_health(old, "healthy")


def test_guestbook_frontend_reaches_the_api_by_name_and_data_survives_a_new_api():
    network, volume = f"berth-test-{RUN}-guestbook", f"berth-test-{RUN}-entries"
    docker("network", "create", *LABELS, network)
    docker("volume", "create", *LABELS, volume)
    api_options = ("--network", network, "--network-alias", "api", "-v", f"{volume}:/data")
    api = run("api", "berth-demo/guestbook-api:1.0", *api_options)
    frontend = run("frontend", "berth-demo/guestbook-frontend:1.0", "--network", network,
                   "-p", "127.0.0.1::8080")  # fmt: skip
    stats = run("stats", "berth-demo/worker:1.0", "--network", network, "-e", "INTERVAL=1",
                "-e", "TARGET_URL=http://api:8080/cgi-bin/stats")  # fmt: skip
    for container in (api, frontend, stats):
        wait_health(container, "healthy")
    url = published(frontend)

    assert json.loads(get(url + "/cgi-bin/info")[1])["api_reachable"] is True
    status, _ = get(url + "/cgi-bin/post", data=b"name=Ann&message=Hello+%22there%22+%26+bye")
    assert status == 200  # the 303 to "/" was followed
    page = get(url + "/")[1]
    assert "Hello &quot;there&quot; &amp; bye" in page and '<p id="count">1 entries</p>' in page
    wait_for(lambda: '"entries":1' in docker("logs", stats), "stats to log the new entry")

    docker("rm", "-f", api)
    status, page = get(url + "/")
    assert status == 502 and "cannot reach the API" in page
    api = run("api", "berth-demo/guestbook-api:1.0", *api_options)
    wait_health(api, "healthy")
    page = get(url + "/")[1]
    assert "Hello &quot;there&quot; &amp; bye" in page, "the entry did not survive"


def test_api_is_unhealthy_when_data_is_not_writable():
    volume = f"berth-test-{RUN}-readonly"
    docker("volume", "create", *LABELS, volume)
    api = run("api-ro", "berth-demo/guestbook-api:1.0", "-v", f"{volume}:/data:ro", *FAST_HEALTH)
    wait_health(api, "unhealthy", timeout=40)
    log = inspect(api)["State"]["Health"]["Log"][-1]["Output"]
    assert "503" in log


def test_worker_logs_a_line_a_second_and_stops_cleanly(worker):
    container, started = worker
    time.sleep(max(0.0, started + 11.5 - time.monotonic()))
    out = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    ticks = [line.split() for line in out.stdout.splitlines() if line.startswith("tick ")]
    assert len(ticks) >= 10
    assert [int(t[1]) for t in ticks] == list(range(1, len(ticks) + 1))
    assert len({t[2] for t in ticks}) >= len(ticks) - 1, "about one line per second"
    assert "tick 10 " in out.stderr and "checkpoint" in out.stderr
    wait_health(container, "healthy")

    began = time.monotonic()
    docker("stop", "-t", "10", container)
    assert time.monotonic() - began < 3, "SIGTERM should stop the worker at once"
    assert inspect(container)["State"]["ExitCode"] == 0
    assert "SIGTERM received" in docker("logs", "--tail", "1", container)
