"""Connects the deployments layer's `container_removing` signal to the log collector:
the lines a container wrote since the last periodic pass are stored before it goes.

The work runs in a thread of its own, joined: it commits on its own connection
whatever transaction the remover is in, and that connection is closed when it ends
(removals also happen in the reconciler's worker threads). It never raises: a log that
could not be read must not stop the removal.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connection
from django.dispatch import receiver

from apps.deployments.signals import container_removing
from apps.hosts.engine import EngineError
from apps.logs import collector

log = logging.getLogger(__name__)


@receiver(container_removing, dispatch_uid="logs.container_removing")
def collect_before_removal(
    sender: Any, host: Any = None, engine: Any = None, engine_id: str = "", **kwargs: Any
) -> None:
    def run() -> None:
        try:
            collector.collect_before_removal(host, engine, engine_id)
        except EngineError as exc:
            log.warning("logs of %s before removal: %s", engine_id[:12], exc)
        except Exception:
            log.exception("logs of %s before removal failed", engine_id[:12])
        finally:
            connection.close()

    worker = threading.Thread(target=run, name="berth-log-final", daemon=True)
    worker.start()
    worker.join()
