"""Which driver drives a host: one factory per host kind.

A new driver (Swarm mode, say) is a class implementing `EngineDriver`, a factory here
under its kind, and that kind among the Host model's choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.hosts.engine.client import single_engine
from apps.hosts.engine.driver import EngineDriver
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.swarm import swarm_cluster

#: The kind of host that the model's default names: one Docker engine.
SINGLE_ENGINE = "engine"
#: A Docker Swarm cluster, reached through a manager's engine (engine/swarm.py).
SWARM = "swarm"

#: Host kind -> factory making that host's driver (no I/O until its first call).
DRIVERS: dict[str, Callable[[Any], EngineDriver]] = {
    SINGLE_ENGINE: single_engine,
    SWARM: swarm_cluster,
}


def get_engine(host: Any) -> EngineDriver:
    """The driver for a Host (anything with its kind, endpoint and TLS fields); no I/O.

    An unknown kind is refused with a non-retryable EngineError: nothing can drive it.
    """
    factory = DRIVERS.get(host.kind)
    if factory is None:
        known = ", ".join(sorted(DRIVERS))
        raise EngineError(
            f"Host {host.endpoint} is of kind {host.kind!r}, which no driver handles "
            f"(known kinds: {known}).",
            retryable=False,
        )
    return factory(host)
