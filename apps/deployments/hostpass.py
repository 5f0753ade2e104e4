"""The periodic host pass's quiet path: the stacks with nothing to do, all at once.

Most passes find most stacks converged: every container listed where the plan wants it.
Those stacks need no engine call and no per-stack work in the database: they are
planned in memory (the same `plan` the reconciler runs), claimed together with one
conditional UPDATE, mirrored together (`mirror_many`: the rows of every stack read in one
query and written in at most one insert, one update and one delete) and released
together with their new state. A pass over a quiet host costs the same number of
queries for 2 stacks or 2,000. A stack with work to do (a killed container, an operation
under way, a rollout, a revision change) goes through the reconciler's own `Run`, one
stack at a time, exactly as before.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Collection
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from apps.deployments.mirror import Observed, mirror_many, stack_state
from apps.deployments.models import Stack
from apps.deployments.planner import plan
from apps.hosts.engine import EngineDriver
from apps.hosts.models import Host

log = logging.getLogger(__name__)


def is_quiet(run) -> bool:
    """Whether the stack of `run` (a reconciler.Run fed the host's list) has nothing to
    do: running or stopped as desired, no operation, rollout or legacy hand-over under
    way, and an empty plan for what was listed."""
    stack = run.stack
    if run.project is None or stack.operation or stack.legacy_containers:
        return False
    if stack.desired_state == Stack.Desired.REMOVED:
        return False
    if getattr(stack, "active_rollouts", None) != []:  # prefetched by the host pass
        return False
    return not plan(run.desired(), run.observed(run.listed))


def settle_quiet(host: Host, engine: EngineDriver, runs: list, lease: int) -> int:
    """Mirror every quiet stack of `runs` under one lease token; returns how many.

    A stack another worker holds is left to it, and one changed since it was read
    (revision, desired state or operation) to its own task or the next pass. Safe to run
    twice or after a crash: the mirror writes what the engine listed, and a lease left
    by a crash expires like any other.
    """
    if not runs:
        return 0
    token = f"{socket.gethostname()}:{os.getpid()}:pass-{uuid.uuid4().hex[:8]}"
    claimed = claim_many([r.stack.pk for r in runs], token, lease)
    mine = [r for r in runs if claimed.get(r.stack.pk) == _version(r.stack)]
    try:
        _mirror_quiet(host, engine, mine)
    except BaseException:
        release_many(token)
        raise
    release_many(token, {r.stack.pk for r in mine})
    if len(mine) < len(claimed):
        release_many(token)
    return len(mine)


def _mirror_quiet(host: Host, engine: EngineDriver, runs: list) -> None:
    observed = [
        Observed(r.stack, r.listed, r.spec, r.project, frozenset(r.routed_services())) for r in runs
    ]
    mirrored = mirror_many(host, observed, engine, end_of_pass=True)
    changed = []
    for run in runs:
        stack, result = run.stack, mirrored[run.stack.pk]
        state, reason = stack_state(stack, result.health, "")
        if (stack.state, stack.state_reason) != (state, reason):
            stack.state, stack.state_reason = state, reason
            changed.append(stack)
        if result.membership_changed:
            run.tell_frontier("reconcile")
    if changed:
        Stack.objects.bulk_update(changed, ["state", "state_reason"])


def _version(stack: Stack) -> tuple:
    """What must not have changed between reading a stack and claiming it."""
    return (stack.current_revision_id, stack.desired_state, stack.operation)


def claim_many(ids: Collection[int], token: str, seconds: int) -> dict[int, tuple]:
    """Take the lease of every stack of `ids` that no worker holds, with one conditional
    UPDATE; returns the claimed stacks' ids -> their version (read under the lease)."""
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    until = now + timedelta(seconds=seconds)
    Stack.objects.filter(free, pk__in=ids).update(claimed_by=token, claimed_until=until)
    # The token is this pass's own: what it holds now stays held until it releases it.
    rows = Stack.objects.filter(claimed_by=token).values_list(
        "pk", "current_revision_id", "desired_state", "operation"
    )
    return {pk: (revision, desired, operation) for pk, revision, desired, operation in rows}


def release_many(token: str, reconciled: Collection[int] | None = None) -> None:
    """Release the leases `token` holds; those of `reconciled` (when given) with the time
    of this pass as their last reconcile."""
    held = Stack.objects.filter(claimed_by=token)
    if reconciled is None:
        held.update(claimed_by="", claimed_until=None)
    elif reconciled:
        held.filter(pk__in=reconciled).update(
            claimed_by="", claimed_until=None, last_reconciled_at=timezone.now()
        )
