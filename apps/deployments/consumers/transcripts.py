"""Shell sessions on the record: the start and end events, and the saved transcript.

An environment with `record_shell_transcripts` keeps the output of every shell (up to
MAX_TRANSCRIPT bytes) in a file only the server's user can read, named by the start
event so the end event can point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from apps.activity.services import record_event
from apps.deployments.models import Container

MAX_TRANSCRIPT = 10 * 1024 * 1024


def record_shell(container: Container, user: Any, action: str, data: dict[str, Any]) -> int:
    """Record a shell's start or end as an Event on the container; the event's id."""
    event = record_event(
        action,
        actor=user,
        tenant=container.stack.tenant,
        obj=container,
        message=f"Shell {data.get('shell', '')} in {container.name}",
        data=data,
    )
    return event.pk


def save_transcript(container: Container, start_event: int, output: bytes) -> str:
    """Write the transcript under BERTH_STATE_DIR/transcripts/<tenant>; its path."""
    folder = Path(settings.BERTH_STATE_DIR) / "transcripts" / container.stack.tenant.slug
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{start_event}-{container.name}.log"
    path.write_bytes(output)
    path.chmod(0o600)
    return str(path)
