"""Signals the deployments layer sends to the layers above it.

The frontier (apps.traffic) sits above deployments, so the reconciler cannot call it;
it sends `frontier_changed` instead, and the frontier's receiver renders, checks and
reloads its configuration before returning. Receivers run in the sender's thread: a
reconciler that marks containers draining and sends the signal knows, when `send`
returns, that no new request goes to them.
"""

from typing import Any

from django.dispatch import Signal

# Sent with `stack_id` (int, or None for "anything may have changed") and `reason` (str)
# when a route, a container's address, health or draining flag, or a canary weight of a
# routed service changed.
frontier_changed = Signal()

# Sent with `host` (the Host row), `engine` (its EngineDriver, open) and `engine_id` just
# before Berth removes one of its containers: what the container still holds (its log
# since the collector's last pass) can be taken before it is gone. Receivers run in the
# sender's thread and must not raise; the removal goes on whatever they did.
container_removing = Signal()


def remove_container(host: Any, engine: Any, engine_id: str) -> None:
    """Remove one of Berth's containers from `engine`, telling the layers above first
    (`container_removing`): every removal of a workload container goes through here."""
    container_removing.send_robust(sender=None, host=host, engine=engine, engine_id=engine_id)
    engine.remove(engine_id)
