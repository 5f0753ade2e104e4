"""Rollouts as people steer them: a canary's weight, promote and abort.

Service functions like the rest of the service layer: they check the role, write the
Rollout row (and, for abort, the stack's revision) in one transaction with an Event,
tell the frontier (weights) and queue the reconciler, which drains and replaces the
containers (rolling.py). The reconciler records every other rollout by itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.activity.services import record_event
from apps.core.queue import enqueue_on_commit
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments.models import Revision, Rollout, Stack
from apps.deployments.signals import frontier_changed
from apps.deployments.tasks import reconcile_stack


def _locked_rollout(rollout: Rollout, *states: str) -> Rollout:
    locked = Rollout.objects.select_for_update().select_related("stack__tenant").get(pk=rollout.pk)
    if locked.state not in states:
        raise ValidationError(
            {"state": f"This rollout is {locked.get_state_display().lower()}, not a canary."}
        )
    return locked


def _record(actor: Any, rollout: Rollout, action: str, message: str) -> None:
    stack = rollout.stack
    record_event(
        action,
        actor=actor,
        tenant=stack.tenant,
        obj=stack,
        message=message,
        data={"rollout": rollout.pk, "service": rollout.service},
    )


def _changed(rollout: Rollout, reason: str) -> None:
    stack_id = rollout.stack_id
    transaction.on_commit(
        lambda: frontier_changed.send_robust(sender=Rollout, stack_id=stack_id, reason=reason)
    )


def _whole_percent(value: Any) -> int:
    """1 to 99 as an int ("20" too); anything else (20.5, true, 0, 100) is refused."""
    text = (
        str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    )
    if not text.isdecimal() or not 1 <= int(text) <= 99:
        raise ValidationError({"weight": "Give a whole number from 1 to 99."})
    return int(text)


@transaction.atomic
def set_canary_weight(actor: Any, rollout: Rollout, weight: Any) -> Rollout:
    """Send `weight` % of the route's traffic to the canary (1 to 99)."""
    require_role(actor, rollout.stack.tenant, Role.MEMBER)
    weight = _whole_percent(weight)
    rollout = _locked_rollout(rollout, Rollout.State.CANARY)
    before = rollout.canary_weight
    rollout.canary_weight = weight
    rollout.save(update_fields=["canary_weight", "updated_at"])
    _record(
        actor,
        rollout,
        "rollout.weight",
        f"{rollout.service}: canary r{rollout.to_revision} from {before}% to {weight}%",
    )
    _changed(rollout, "canary weight")
    return rollout


@transaction.atomic
def promote(actor: Any, rollout: Rollout) -> Rollout:
    """Replace the rest of the service with the canary's revision, batch by batch; the
    old containers are drained and removed (the reconciler does it)."""
    require_role(actor, rollout.stack.tenant, Role.MEMBER)
    rollout = _locked_rollout(rollout, Rollout.State.CANARY)
    stack = Stack.objects.select_for_update().get(pk=rollout.stack_id)
    rollout.state = Rollout.State.PROMOTING
    rollout.save(update_fields=["state", "updated_at"])
    _start(stack, "promote")
    _record(
        actor, rollout, "rollout.promote", f"Promoting {rollout.service} to r{rollout.to_revision}"
    )
    _changed(rollout, "canary promoted")
    enqueue_on_commit(reconcile_stack, stack.pk)
    return rollout


@transaction.atomic
def abort(actor: Any, rollout: Rollout) -> Rollout:
    """Drop the canary: the stack goes back to the revision it came from, and the
    reconciler drains and removes the new containers."""
    require_role(actor, rollout.stack.tenant, Role.MEMBER)
    rollout = _locked_rollout(rollout, Rollout.State.CANARY, Rollout.State.PROMOTING)
    stack = Stack.objects.select_for_update().get(pk=rollout.stack_id)
    back = Revision.objects.filter(stack=stack, number=rollout.from_revision).first()
    if back is None:
        raise ValidationError({"state": f"Revision r{rollout.from_revision} no longer exists."})
    rollout.state = Rollout.State.ABORTING
    rollout.save(update_fields=["state", "updated_at"])
    stack.current_revision = back
    stack.template_version = back.template_version
    stack.answers = back.answers
    stack.compose = back.compose
    _start(stack, "abort")
    _record(actor, rollout, "rollout.abort", f"Aborting the canary of {rollout.service}")
    _changed(rollout, "canary aborted")
    enqueue_on_commit(reconcile_stack, stack.pk)
    return rollout


def _start(stack: Stack, operation: str) -> None:
    now = timezone.now()
    stack.operation = operation
    stack.operation_started_at = now
    stack.operation_deadline = now + timedelta(seconds=settings.BERTH_OPERATION_TIMEOUT)
    stack.cancel_requested = False
    stack.state = Stack.State.DEPLOYING
    stack.state_reason = ""
    stack.save()
