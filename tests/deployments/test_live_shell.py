"""Interactive shells and stats over websockets against the real engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from apps.activity.models import Event
from tests.fixtures.engine import inspect
from tests.fixtures.live import (
    close_code,
    deploy,
    docker,
    open_socket,
    receive_json,
    run,
    session_headers,
    until,
)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("live_settings"),
]

SLEEPER = """
services:
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


async def read_until(comm, text: str, timeout: float = 10) -> str:
    """Terminal output (binary frames) until `text` appears; control messages skipped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    output = ""
    while text not in output:
        message = await comm.receive_output(timeout=max(deadline - loop.time(), 0.01))
        assert message["type"] == "websocket.send", (message, output)
        if message.get("bytes") is not None:
            output += message["bytes"].decode(errors="replace")
    return output


def test_shell_runs_commands_resizes_and_exit_closes(environment, image, owner, settings):
    (web,) = deploy(environment, "shell", SLEEPER, IMAGE=image)
    hostname = inspect(web.engine_id)["Config"]["Hostname"]
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/?cols=80&rows=24", headers)
        ready = await receive_json(comm)
        assert ready == {
            "type": "ready",
            "shell": "/bin/sh",
            "container": web.name,
            "window": settings.BERTH_SHELL_WINDOW_BYTES,
        }
        await comm.send_to(bytes_data=b"echo host=$HOSTNAME\r")
        output = await read_until(comm, f"host={hostname}")
        assert f"host={hostname}" in output
        await comm.send_json_to({"type": "resize", "cols": 123, "rows": 45})
        await asyncio.sleep(0.3)
        await comm.send_to(text_data=json.dumps({"type": "input", "data": "stty size\r"}))
        await read_until(comm, "45 123")
        await comm.send_to(bytes_data=b"exit 3\r")
        seen = await until(comm, lambda m: m["type"] == "exit")
        assert seen[-1]["code"] == 3
        assert await close_code(comm) == 1000
        await comm.disconnect(timeout=5)

    run(scenario())
    events = Event.objects.filter(object_type="container", object_id=str(web.pk))
    start = events.get(action="container.shell_start")
    end = events.get(action="container.shell_end")
    assert start.actor == owner and end.actor == owner
    assert end.data["exit_code"] == 3 and end.data["stack"] == web.stack_id
    assert "transcript" not in end.data


async def read_quiet(comm, quiet: float = 1.5, acked: int | None = None) -> int:
    """Output bytes until none arrived for `quiet` seconds; JSON messages must not come.
    With `acked` (the bytes acknowledged so far), acks every 64 KiB like the browser."""
    received = unacked = 0
    # (receive_output's own timeout would cancel the application)
    while not await comm.receive_nothing(timeout=quiet):
        message = await comm.receive_output()
        assert message.get("bytes") is not None, message
        received += len(message["bytes"])
        unacked += len(message["bytes"])
        if acked is not None and unacked >= 64 * 1024:
            unacked = 0
            await comm.send_json_to({"type": "ack", "bytes": acked + received})
    return received


def test_a_client_that_does_not_ack_gets_one_window_until_it_acks(
    environment, image, owner, settings
):
    settings.BERTH_SHELL_WINDOW_BYTES = window = 256 * 1024
    (web,) = deploy(environment, "window", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        assert (await receive_json(comm))["window"] == window
        await comm.send_to(bytes_data=b"yes berth-flood-line\r")
        # `yes` never stops; the server stops reading it once a window is unacknowledged
        first = await read_quiet(comm)
        assert first == window
        await asyncio.sleep(1)
        assert await comm.receive_nothing(timeout=1)
        await comm.send_json_to({"type": "ack", "bytes": first // 2})
        second = await read_quiet(comm)
        assert second == window // 2
        await comm.send_json_to({"type": "ack", "bytes": first + second})
        third = await read_quiet(comm)
        assert third == window
        # Ctrl-C; what `yes` printed before it died drains with acks, then the shell exits
        await comm.send_to(bytes_data=b"\x03")
        await comm.send_json_to({"type": "ack", "bytes": first + second + third})
        await read_quiet(comm, acked=first + second + third)
        await comm.send_to(bytes_data=b"exit\r")
        await until(comm, lambda m: m["type"] == "exit")
        assert await close_code(comm) == 1000
        await comm.disconnect(timeout=5)

    run(scenario())


def test_a_client_that_stops_acking_is_closed(environment, image, owner, settings):
    settings.BERTH_SHELL_WINDOW_BYTES = 64 * 1024
    settings.BERTH_SHELL_ACK_SECONDS = 2
    (web,) = deploy(environment, "noack", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        await receive_json(comm)
        await comm.send_to(bytes_data=b"yes\r")
        seen = await until(comm, lambda m: m["type"] == "error", timeout=10)
        assert "acknowledg" in seen[-1]["message"]
        assert await close_code(comm) == 4429

    run(scenario())
    processes = docker("exec", web.engine_id, "ps", "-o", "args")
    assert "yes" not in processes.split()


def test_interactive_session_with_acks_ends_with_1000(environment, image, owner):
    """The browser's flow: keys one by one, acks as output is shown, `exit` -> 1000."""
    (web,) = deploy(environment, "interactive", SLEEPER, IMAGE=image)
    hostname = inspect(web.engine_id)["Config"]["Hostname"]
    headers = session_headers(owner)

    async def session() -> None:
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        await receive_json(comm)
        for key in "echo $HOSTNAME\r":
            await comm.send_to(bytes_data=key.encode())
        output = await read_until(comm, f"\r\n{hostname}\r\n")
        await comm.send_json_to({"type": "ack", "bytes": len(output.encode())})
        for key in "exit\r":
            await comm.send_to(bytes_data=key.encode())
        seen = await until(comm, lambda m: m["type"] == "exit")
        assert seen[-1]["code"] == 0
        assert await close_code(comm) == 1000
        await comm.disconnect(timeout=5)

    async def scenario():
        for _ in range(3):
            await session()

    run(scenario())


def test_closing_the_socket_ends_the_shell_process_and_keeps_a_transcript(
    environment, image, owner, settings, tmp_path
):
    settings.BERTH_STATE_DIR = tmp_path
    environment.record_shell_transcripts = True
    environment.save()
    (web,) = deploy(environment, "shellkill", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        await receive_json(comm)
        # a foreground child that ignores the hangup must still be ended
        await comm.send_to(bytes_data=b"echo marker-$((40+2)); trap '' HUP; sleep 777\r")
        await read_until(comm, "marker-42")
        await comm.disconnect(timeout=10)

    run(scenario())
    processes = docker("exec", web.engine_id, "ps", "-o", "args")
    assert "sleep 777" not in processes
    end = Event.objects.get(action="container.shell_end", object_id=str(web.pk))
    transcript = Path(end.data["transcript"])
    assert transcript.is_relative_to(tmp_path)
    assert "marker-42" in transcript.read_text()


def test_idle_shell_is_closed(environment, image, owner, settings):
    settings.BERTH_SHELL_IDLE_SECONDS = 1
    (web,) = deploy(environment, "idle", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/shell/", headers)
        assert await close_code(comm, timeout=10) == 4408

    run(scenario())


def test_stats_arrive_every_few_seconds(environment, image, owner):
    (web,) = deploy(environment, "stats", SLEEPER, IMAGE=image)
    headers = session_headers(owner)

    async def scenario():
        comm = await open_socket(f"/ws/containers/{web.pk}/stats/", headers)
        first = await receive_json(comm, timeout=10)
        second = await receive_json(comm, timeout=10)
        for sample in (first, second):
            assert sample["type"] == "stats"
            assert sample["memory"]["usage"] > 0
            assert {"cpu_percent", "net", "block", "pids"} <= set(sample)
        await comm.disconnect(timeout=5)

    run(scenario())
