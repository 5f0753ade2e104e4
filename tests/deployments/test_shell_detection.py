"""The shell page offers only the shells a container has, on the real engine.

Two images built here from busybox-static: one with only /bin/sh (a symlink to
/bin/busybox, as busybox images have it) and one with no shell at all. The engine is
asked through the archive API (no shell needed); an exec the runtime refuses reaches
the terminal as a sentence, never as 'OCI runtime exec failed: ...'.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from apps.deployments.shells import SHELL_PATHS, shell_choice
from apps.hosts.engine import get_engine, streams
from tests.conftest import login
from tests.fixtures.engine import docker
from tests.fixtures.live import close_code, deploy, open_socket, receive_json, run, session_headers

pytestmark = [
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

TAG = uuid.uuid4().hex[:8]
ONLY_SH = f"berth-test-only-sh:{TAG}"
NO_SHELL = f"berth-test-no-shell:{TAG}"
DOCKERFILES = {
    ONLY_SH: 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "ln", "-s", '
    '"/bin/busybox", "/bin/sh"]\nCMD ["/bin/busybox", "sleep", "3600"]\n',
    NO_SHELL: 'FROM scratch\nCOPY busybox /busybox\nCMD ["/busybox", "sleep", "3600"]\n',
}
SLEEPER = """
services:
  web:
    image: ${IMAGE}
    command: ["${BUSYBOX}", "sleep", "3600"]
    stop_grace_period: 1s
"""


@pytest.fixture(scope="session")
def shell_images(tmp_path_factory) -> Iterator[None]:
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is not installed"
    for tag, dockerfile in DOCKERFILES.items():
        context = tmp_path_factory.mktemp("shell-image")
        shutil.copy(busybox, context / "busybox")
        (context / "Dockerfile").write_text(dockerfile)
        docker("build", "-q", "-t", tag, "--label", "io.berth.test=1", str(context))
    yield
    docker("rmi", "-f", *DOCKERFILES, check=False)


def engine():
    from apps.hosts.models import Host

    return get_engine(Host(name="local", endpoint=settings.BERTH_DOCKER_HOST))


def test_available_shells_follow_symlinks_and_need_no_shell(environment, image, shell_images):
    (full,) = deploy(environment, "full", SLEEPER, IMAGE=image, BUSYBOX="/bin/busybox")
    (only_sh,) = deploy(environment, "onlysh", SLEEPER, IMAGE=ONLY_SH, BUSYBOX="/bin/busybox")
    (bare,) = deploy(environment, "bare", SLEEPER, IMAGE=NO_SHELL, BUSYBOX="/busybox")
    with engine() as driver:
        assert {"/bin/sh", "/bin/ash"} <= set(driver.available_shells(full.engine_id, SHELL_PATHS))
        assert driver.available_shells(only_sh.engine_id, SHELL_PATHS) == ["/bin/sh"]
        assert driver.available_shells(bare.engine_id, SHELL_PATHS) == []
        # A directory, a missing path and a dangling symlink are no shells.
        docker("exec", only_sh.engine_id, "/bin/busybox", "ln", "-s", "/nowhere", "/bin/zsh")
        docker("exec", only_sh.engine_id, "/bin/busybox", "mkdir", "/bin/bash")
        assert driver.available_shells(only_sh.engine_id, SHELL_PATHS) == ["/bin/sh"]

    assert shell_choice(only_sh).shells == ["/bin/sh"]
    choice = shell_choice(bare)
    assert choice.running and choice.shells == []
    assert choice.problem.startswith("This container has no shell")
    docker("stop", "-t", "1", only_sh.engine_id)
    stopped = shell_choice(only_sh)
    assert not stopped.running and "not running" in stopped.problem


def test_shell_page_offers_only_what_exists(environment, image, shell_images, owner):
    (only_sh,) = deploy(environment, "onlysh", SLEEPER, IMAGE=ONLY_SH, BUSYBOX="/bin/busybox")
    (bare,) = deploy(environment, "bare", SLEEPER, IMAGE=NO_SHELL, BUSYBOX="/busybox")
    client = login(Client(), owner)
    body = client.get(reverse("stacks:shell", args=[only_sh.pk])).content.decode()
    assert '<option value="/bin/sh">' in body and "/bin/bash" not in body
    assert f"/ws/containers/{only_sh.pk}/shell/" in body
    body = client.get(reverse("stacks:shell", args=[bare.pk])).content.decode()
    assert "This container has no shell" in body and "data-shell" not in body


def test_refused_exec_is_a_sentence_not_the_runtime_error(environment, shell_images, owner):
    (only_sh,) = deploy(environment, "onlysh", SLEEPER, IMAGE=ONLY_SH, BUSYBOX="/bin/busybox")
    (bare,) = deploy(environment, "bare", SLEEPER, IMAGE=NO_SHELL, BUSYBOX="/busybox")
    headers = session_headers(owner)

    async def refused(container, shell: str) -> tuple[str, int]:
        comm = await open_socket(f"/ws/containers/{container.pk}/shell/?shell={shell}", headers)
        while True:
            message = await receive_json(comm)
            if message["type"] == "error":
                return message["message"], await close_code(comm)

    message, code = run(refused(only_sh, "/bin/bash"))
    assert (message, code) == (
        "/bin/bash does not exist in this container: choose another shell.",
        4422,
    )
    message, code = run(refused(bare, "/bin/sh"))
    assert message == "/bin/sh does not exist in this container: choose another shell."
    assert "OCI" not in message


def test_runtime_messages_are_described():
    raw = (
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"/bin/bash": stat /bin/bash: no such file or directory: unknown\r\n'
    )
    assert streams.describe_exec_failure(raw, "/bin/bash") == (
        "/bin/bash does not exist in this container: choose another shell."
    )
    stopped = "Container 0123abcd is not running"
    assert "not running any more" in streams.describe_exec_failure(stopped, "/bin/sh")
    denied = "OCI runtime exec failed: exec failed: exec: permission denied: unknown"
    assert "permission denied" in streams.describe_exec_failure(denied, "/bin/sh")
    assert streams.describe_exec_failure("/ # ls\r\n", "/bin/sh") is None
