"""A standing subscription to an engine's events that names the containers of this
installation whose listing changed: what lets the host pass list only those (see
apps/deployments/listing.py) instead of every container of the host on every pass.

One HTTP stream per feed, read in a thread. The engine's event filters cannot say
"this installation's containers, and the network events of those containers" in one
subscription (a label filter drops every network event), so the stream carries the
container and network events of every container and the reader keeps those that name
this installation (container events carry the container's labels) and, for network
connect/disconnect, the container id the event names (the caller keeps the ids it
knows). Health probes' and shells' exec events change nothing listed and are left out
by the engine itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.hosts.engine.labels import INSTALLATION_LABEL, installation_id
from apps.hosts.engine.streams import _close_response

if TYPE_CHECKING:
    from apps.hosts.engine.client import DockerEngine

#: Container actions that change what a list call shows of a container: its existence,
#: state, status (exit code, health), name, or configuration.
LISTED_ACTIONS = (
    "create",
    "start",
    "restart",
    "die",
    "kill",
    "oom",
    "stop",
    "pause",
    "unpause",
    "destroy",
    "rename",
    "update",
    "health_status",
)
#: Network actions that change a container's addresses.
NETWORK_ACTIONS = ("connect", "disconnect")


@dataclass(frozen=True)
class Changes:
    """What a feed saw between two takes: `containers` are this installation's
    containers named by a container event; `rewired` are the ids of any containers
    connected to or disconnected from a network (the caller keeps the ones it knows)."""

    containers: frozenset[str]
    rewired: frozenset[str]

    def ids(self, known: Mapping[str, Any]) -> set[str]:
        return set(self.containers) | {cid for cid in self.rewired if cid in known}


class ChangeFeed:
    """The engine's container and network events, read in a thread from `open()` on.

    `take()` returns what changed since the previous take, or None once the stream
    broke (the engine restarted or went away, or `close()` was called): the caller must
    then list everything again and open a new feed. A feed opened before a full list
    misses nothing that happens after that list.
    """

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.installation = installation_id()
        self._lock = threading.Lock()
        self._containers: set[str] = set()
        self._rewired: set[str] = set()
        self._broken = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    def open(self) -> ChangeFeed:
        """Subscribe before returning: an event after this call is never missed."""
        api = self.engine._docker.api
        filters = {
            "type": ["container", "network"],
            "event": [*LISTED_ACTIONS, *NETWORK_ACTIONS],
        }
        with self.engine._errors():
            stream = api.events(filters=filters, decode=True)
        self._response = stream._response
        self._thread = threading.Thread(
            target=self._read, args=(stream,), name="berth-change-feed", daemon=True
        )
        self._thread.start()
        return self

    def _read(self, stream: Any) -> None:
        # Ends when closed by us, or when the engine went away: take() says so then.
        with contextlib.suppress(Exception):
            for event in stream:
                self._note(event)
        self._broken.set()

    def _note(self, event: Mapping[str, Any]) -> None:
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        kind = event.get("Type")
        with self._lock:
            if kind == "container":
                if attributes.get(INSTALLATION_LABEL) == self.installation:
                    self._containers.add(str(actor.get("ID") or event.get("id") or ""))
            elif kind == "network" and attributes.get("container"):
                self._rewired.add(str(attributes["container"]))

    @property
    def broken(self) -> bool:
        return self._broken.is_set()

    def take(self) -> Changes | None:
        """What changed since the previous take (and forget it); None once broken."""
        if self.broken:
            return None
        with self._lock:
            changes = Changes(frozenset(self._containers), frozenset(self._rewired))
            self._containers, self._rewired = set(), set()
        # Broken while we read: what was taken may lack the last events. List everything.
        return None if self.broken else changes

    def pending(self) -> set[str]:
        """The container ids named since the last take (without taking them)."""
        with self._lock:
            return set(self._containers) | set(self._rewired)

    def close(self) -> None:
        self._broken.set()
        _close_response(self._response)
        self._response = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with contextlib.suppress(Exception):
            self.engine.close()
