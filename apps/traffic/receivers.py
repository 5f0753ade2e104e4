"""Connects the deployments layer's `frontier_changed` signal to the frontier.

The receiver runs in the sender's thread and returns once the frontier serves the new
state (or has refused it): a reconciler that marks containers draining and sends the
signal knows, when `send` returns, that no new request goes to them. It never raises:
a frontier problem is recorded in status.json and logged, and must not fail the change
that triggered it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from apps.deployments.signals import frontier_changed
from apps.traffic import frontier

log = logging.getLogger(__name__)


@receiver(frontier_changed, dispatch_uid="traffic.frontier_changed")
def frontier_changed_apply(
    sender: Any, stack_id: int | None = None, reason: str = "", **kwargs: Any
) -> frontier.Result | None:
    """Render, check and reload the frontier for a change of `stack_id` (all routes are
    rendered each time: the configuration is platform-wide)."""
    try:
        return frontier.apply(reason=f"{reason or 'change'} (stack {stack_id})")
    except Exception:
        log.exception("frontier apply after %s (stack %s) failed", reason, stack_id)
        return None
