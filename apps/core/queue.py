"""Queueing background work without turning a broker outage into a 500.

Desired state is already committed when work is queued, and the periodic reconcile
picks it up anyway; so a stopped Redis delays the work and shows a banner, it does
not fail the request.
"""

import logging

from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def enqueue(task, *args, **kwargs) -> bool:
    """Send `task` now; False (and a log line) when the broker cannot be reached."""
    try:
        task.apply_async(args=args, kwargs=kwargs, retry=False)
    except (OperationalError, ConnectionError, OSError) as exc:
        logger.warning("could not queue %s%s: %s", task.name, args, exc)
        return False
    return True


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """Queue `task` once the surrounding transaction commits (ids only, never objects)."""
    transaction.on_commit(lambda: enqueue(task, *args, **kwargs))
