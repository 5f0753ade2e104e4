"""What may be done with one task of a stack on a Swarm cluster (issue 14).

A stack on a swarm is mirrored as one Container row per task (swarm_reconcile.py): its
`engine_id` is the task id and `node` the SwarmNode it runs on. The driver addresses a
task by that id (apps/hosts/engine/swarm.py); what it can reach decides the rest:

- logs (tail and follow, one task, the service's merged log, the download) work on
  every node: the manager's task logs endpoint serves them;
- the shell, live stats and the engine's inspect view need the task's own engine:
  Berth has the one of the node the host's endpoint is (`SwarmNode.is_endpoint`), and
  those a platform admin gave other nodes, once checked to be those nodes
  (`SwarmNode.reaches_engine`); for a task elsewhere they are refused, with the
  driver's sentence (`node_engine_needed`), and the stack page shows no button for them;
- start, stop, restart and remove are refused for every task (`action_problem`):
  Swarm starts, stops and replaces its tasks itself, one task cannot be acted on alone.

These are pure functions of the rows (no engine call): the pages, the API and the
sockets ask them before offering or opening anything; the driver checks the node again.
"""

from __future__ import annotations

from typing import Any

from apps.hosts.engine.swarm import NODE_ENGINE_USES, node_engine_needed
from apps.hosts.models import prefetch_node_engines

ACTION_VERBS = {"start": "started", "stop": "stopped", "restart": "restarted", "remove": "removed"}
ACTIONS_REFUSED = (
    "{name} is a task of a Swarm service: Swarm starts, stops and replaces its tasks "
    "itself, so one task cannot be {verb} on its own. Scale its service, or stop and "
    "start the whole stack."
)
UNKNOWN_NODE = "(not known yet)"


def reach_problem(what: str, *, swarm: bool, node: str | None, endpoint: bool) -> str:
    """Why `what` ("shell", "stats", "inspect") cannot reach a container, "" when it
    can: a container on a single engine always can; a task only on a node whose engine
    Berth reaches (`endpoint`: SwarmNode.reaches_engine). `node` is the node's hostname
    (None when the heartbeat has not recorded it yet)."""
    if what not in NODE_ENGINE_USES:
        raise ValueError(f"unknown use {what!r}")
    if not swarm or endpoint:
        return ""
    return node_engine_needed(what, node or UNKNOWN_NODE)


def container_problem(container: Any, what: str) -> str:
    """`reach_problem` for a Container row (its host and node read, so select them)."""
    node = container.node
    return reach_problem(
        what,
        swarm=container.host.is_swarm,
        node=node.hostname if node is not None else None,
        endpoint=node is not None and node.reaches_engine,
    )


def prepare_reach(container: Any, what: str) -> str:
    """`container_problem`, for a websocket consumer (in its database step): when the
    task is reachable, its host's node engine endpoints are read now too, so the
    driver made later in the consumer's async code asks the database nothing."""
    problem = container_problem(container, what)
    if not problem:
        prefetch_node_engines([container.host])
    return problem


def action_problem(container: Any, action: str) -> str:
    """Why `action` (start, stop, restart, remove) is refused for this container, ""
    when it is not (a container on a single engine)."""
    if not container.host.is_swarm:
        return ""
    return ACTIONS_REFUSED.format(name=container.name, verb=ACTION_VERBS[action])
