"""The shell socket: an interactive `docker exec` with a TTY, under credit-based flow."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.accounts.channels_auth import socket_db
from apps.core.roles import Role
from apps.deployments.consumers.base import (
    CLOSE_ACK_TIMEOUT,
    CLOSE_ENGINE,
    CLOSE_IDLE,
    CLOSE_NOT_RUNNING,
    CLOSE_UNAVAILABLE,
    BadRequestError,
    LiveConsumer,
)
from apps.deployments.consumers.buffering import OutputWindow
from apps.deployments.consumers.transcripts import MAX_TRANSCRIPT, record_shell, save_transcript
from apps.deployments.models import Container
from apps.deployments.shells import SHELLS
from apps.deployments.swarm_tasks import prepare_reach
from apps.hosts.engine import EngineError, get_engine, streams
from apps.hosts.engine.driver import ShellSession

# Flow control: BERTH_SHELL_WINDOW_BYTES of output may be unacknowledged, and a full
# window waits BERTH_SHELL_ACK_SECONDS for an ack before the socket closes with 4429.

#: The runtime refused to start the shell (it does not exist, it may not be run).
CLOSE_NO_SHELL = 4422


class ShellConsumer(LiveConsumer):
    """An interactive `docker exec` with a TTY; members and above only."""

    model = Container
    role = Role.MEMBER

    def parse(self, query: dict[str, str]) -> dict[str, Any]:
        shell = query.get("shell", "/bin/sh")
        if shell not in SHELLS:
            raise BadRequestError(f"shell must be one of {', '.join(SHELLS)}.")
        return {"shell": shell, **_size(query.get("cols", "80"), query.get("rows", "24"))}

    def prepare(self, obj: Container) -> str:
        return prepare_reach(obj, "shell")

    async def begin(self) -> None:
        self.session: ShellSession | None = None
        if self.prepared:  # a Swarm task on a node whose engine Berth cannot reach
            await self.fail(CLOSE_UNAVAILABLE, self.prepared)
            return
        self.output = bytearray()
        self.record = self.obj.stack.environment.record_shell_transcripts
        self.last_input = time.monotonic()
        self.window = OutputWindow(settings.BERTH_SHELL_WINDOW_BYTES)
        self.lease_held = await self.lease()
        if self.lease_held is None:
            return
        try:
            await self.start_session()
        except EngineError as exc:
            await self.exec_refused(str(exc)) or await self.fail(CLOSE_ENGINE, str(exc))
            return
        if self.session is None:
            return
        self.spawn(self.pump())
        self.spawn(self.idle_watch())

    async def start_session(self) -> None:
        engine = get_engine(self.obj.host)
        running = await asyncio.to_thread(streams.container_running, engine, self.obj.engine_id)
        if not running:
            await self.fail(CLOSE_NOT_RUNNING, "The container is not running.")
            return
        session = engine.exec_shell(
            self.obj.engine_id,
            self.params["shell"],
            uuid.uuid4().hex,
            self.params["cols"],
            self.params["rows"],
        )
        self.session = session
        await asyncio.to_thread(session.start)
        self.started = timezone.now()
        self.start_event = await socket_db(record_shell)(
            self.obj, self.scope["user"], "container.shell_start", {"shell": self.params["shell"]}
        )
        await self.send_json(
            {
                "type": "ready",
                "shell": self.params["shell"],
                "container": self.obj.name,
                "window": self.window.size,
            }
        )

    async def in_pool(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(streams.POOL, func, *args)

    async def pump(self) -> None:
        """Copy exec output to the socket while the client's window has room.

        daphne never pushes back: whatever is sent is queued in its memory until the
        client reads it. So the exec socket is simply not read while the window is
        full; the kernel's buffers fill and the TTY blocks the printing process.
        """
        session, window = self.session, self.window
        first = True
        while not self.closed:
            await window.ready.wait()
            data = await self.in_pool(session.read, window.room())
            if not data:
                break
            if first:
                first = False
                if await self.exec_refused(data[:2048].decode("utf-8", "replace")):
                    self.exit_code = await asyncio.to_thread(_exit_code_soon, session)
                    return
            if self.record and len(self.output) < MAX_TRANSCRIPT:
                self.output += data
            window.sent(len(data))
            await self.send(bytes_data=data)
        if self.closed:
            return
        self.exit_code = await asyncio.to_thread(_exit_code_soon, session)
        await self.send_json({"type": "exit", "code": self.exit_code})
        await self.shutdown(1000)

    async def exec_refused(self, text: str) -> bool:
        """The runtime's refusal ('OCI runtime exec failed: ... no such file or
        directory', a container stopped mid-way) as a sentence and a close code, never
        its raw text in the terminal; False when `text` is no refusal."""
        problem = streams.describe_exec_failure(text, self.params["shell"])
        if problem is None:
            return False
        stopped = "not running" in problem
        await self.fail(CLOSE_NOT_RUNNING if stopped else CLOSE_NO_SHELL, problem)
        return True

    async def idle_watch(self) -> None:
        """Close a shell nobody types into, and one whose client stopped acknowledging
        (its output would otherwise hold an exec and a thread slot forever)."""
        idle = settings.BERTH_SHELL_IDLE_SECONDS
        patience = settings.BERTH_SHELL_ACK_SECONDS
        while not self.closed:
            now = time.monotonic()
            left = self.last_input + idle - now
            if left <= 0:
                await self.fail(CLOSE_IDLE, "The shell was idle too long and was closed.")
                return
            if self.window.stalled_for(now) >= patience:
                message = "The client stopped acknowledging output; the shell was closed."
                await self.fail(CLOSE_ACK_TIMEOUT, message)
                return
            await asyncio.sleep(min(left, 1.0))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if bytes_data is not None:
            await self.write(bytes_data)
            return
        await super().receive(text_data=text_data)

    async def write(self, data: bytes) -> None:
        if getattr(self, "session", None) is None or self.closed:
            return
        self.last_input = time.monotonic()
        await asyncio.to_thread(self.session.write, data)

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ack":
            count = message.get("bytes")
            if isinstance(count, int) and not isinstance(count, bool):
                self.window.ack(count)
        elif kind == "input" and isinstance(message.get("data"), str):
            await self.write(message["data"].encode())
        elif kind == "resize" and getattr(self, "session", None) is not None:
            try:
                size = _size(str(message.get("cols")), str(message.get("rows")))
            except BadRequestError:
                return
            await asyncio.to_thread(self.session.resize, size["cols"], size["rows"])

    async def release(self) -> None:
        session, self.session = getattr(self, "session", None), None
        if session is not None:
            await asyncio.to_thread(session.close)
            if hasattr(self, "start_event"):
                await self.record_end(session)
            await asyncio.to_thread(session.engine.close)
        if getattr(self, "lease_held", None) is not None:
            self.lease_held.give_all()

    async def record_end(self, session: ShellSession) -> None:
        code = getattr(self, "exit_code", None)
        if code is None:
            code = await asyncio.get_running_loop().run_in_executor(None, session.exit_code)
        data: dict[str, Any] = {
            "shell": self.params["shell"],
            "exit_code": code,
            "seconds": round((timezone.now() - self.started).total_seconds(), 1),
            "start_event": self.start_event,
        }
        if self.record:
            data["transcript"] = await socket_db(save_transcript)(
                self.obj, self.start_event, bytes(self.output)
            )
            data["transcript_bytes"] = len(self.output)
        await socket_db(record_shell)(self.obj, self.scope["user"], "container.shell_end", data)


def _exit_code_soon(session: ShellSession) -> int | None:
    """The engine marks an exec finished a moment after its output ends."""
    for _ in range(20):
        code = session.exit_code()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def _size(cols: str, rows: str) -> dict[str, int]:
    if not (
        cols.isdecimal() and rows.isdecimal() and 0 < int(cols) <= 1000 and 0 < int(rows) <= 1000
    ):
        raise BadRequestError("cols and rows must be whole numbers from 1 to 1000.")
    return {"cols": int(cols), "rows": int(rows)}
