"""Websocket consumers of live operations: stack events, logs, shells and stats.

The protocol is documented in apps/deployments/WEBSOCKETS.md. One module per stream
(`events`, `logs`, `shell`, `stats`), all on `base.LiveConsumer`, which accepts,
authorizes through `visible_to` and keeps re-checking; `buffering` bounds what a socket
holds, `fanout` shares one engine stream per container among the log and stats
sockets, and `transcripts` records shell sessions. Docker is reached only through
apps.hosts.engine.streams, read in its bounded thread pool. A new stream is a new
module here with a `LiveConsumer` subclass, exported below and routed in paas/routing.py.
"""

from apps.deployments.consumers.events import StackEventsConsumer
from apps.deployments.consumers.logs import (
    LOG_BATCH,
    LOG_WINDOW,
    LogsConsumer,
    ServiceLogsConsumer,
)
from apps.deployments.consumers.shell import ShellConsumer
from apps.deployments.consumers.stats import StatsConsumer

__all__ = [
    "LOG_BATCH",
    "LOG_WINDOW",
    "LogsConsumer",
    "ServiceLogsConsumer",
    "ShellConsumer",
    "StackEventsConsumer",
    "StatsConsumer",
]
