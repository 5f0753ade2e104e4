"""Signals the deployments layer sends to the layers above it.

The frontier (apps.traffic) sits above deployments, so the reconciler cannot call it;
it sends `frontier_changed` instead, and the frontier's receiver renders, checks and
reloads its configuration before returning. Receivers run in the sender's thread: a
reconciler that marks containers draining and sends the signal knows, when `send`
returns, that no new request goes to them.
"""

from django.dispatch import Signal

# Sent with `stack_id` (int, or None for "anything may have changed") and `reason` (str)
# when a route, a container's address, health or draining flag, or a canary weight of a
# routed service changed.
frontier_changed = Signal()
