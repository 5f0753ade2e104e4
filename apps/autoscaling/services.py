"""Autoscaling: a service's settings (`configure`), the autoscaler's judgement of each
service (`evaluate`, run by beat through `evaluate_all`), and the refusal of a person's
scale while the autoscaler manages the service (`refuse_manual_scale`).

The autoscaler changes nothing by itself: a decision to scale calls
`apps.deployments.services.scale`, the function behind the Scale button and the API's
`scale/`, so the quota, the policy, the revision, the Event and the reconciler are those
of a manual scale. A refused scale (quota reached since) is recorded, not raised.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.autoscaling import metrics, planning
from apps.autoscaling.models import Autoscaler
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments import services as deployments
from apps.deployments.models import Service, Stack

log = logging.getLogger(__name__)

FIELDS = ("enabled", "min_replicas", "max_replicas", "metric", "target", "cooldown_seconds", "step")
MAX_COOLDOWN = 86400


# --- settings -------------------------------------------------------------------------------


def check_settings(actor: Any, service: Service, values: dict[str, Any]) -> None:
    """Refuse settings the autoscaler could not honour, each message on its field: the
    bounds, a target with nothing to measure it against, a maximum the tenant's quota
    or the policy would refuse today."""
    errors: dict[str, list[str]] = {}
    low, high = values["min_replicas"], values["max_replicas"]
    top = deployments.MAX_REPLICAS
    if not 1 <= low <= top:
        errors.setdefault("min_replicas", []).append(
            f"Give a number from 1 to {top} (a service at 0 has no metrics to scale out on)."
        )
    if not 1 <= high <= top:
        errors.setdefault("max_replicas", []).append(f"Give a number from 1 to {top}.")
    elif high < low:
        errors.setdefault("max_replicas", []).append("The maximum must be at least the minimum.")
    if not 1 <= values["step"] <= top:
        errors.setdefault("step", []).append(f"Give a number from 1 to {top}.")
    if not 0 <= values["cooldown_seconds"] <= MAX_COOLDOWN:
        errors.setdefault("cooldown_seconds", []).append(
            f"Give a number of seconds from 0 to {MAX_COOLDOWN}."
        )
    if not values["enabled"]:
        # Turning it off must always be possible, even once the target can no longer be
        # measured (a redeploy dropped the CPU limit): only the numbers are checked.
        if errors:
            raise ValidationError(errors)
        return
    errors.update(_target_problems(service, values["metric"], values["target"]))
    if "max_replicas" not in errors:
        try:
            deployments.check_scale(actor, service, high)
        except ValidationError as exc:
            errors.setdefault("max_replicas", []).append(
                f"{high} replicas would be refused: {' '.join(exc.messages)}"
            )
    if errors:
        raise ValidationError(errors)


def _target_problems(service: Service, metric: str, target: float) -> dict[str, list[str]]:
    if metric not in Autoscaler.Metric.values:
        return {"metric": [f"Choose one of {', '.join(Autoscaler.Metric.values)}."]}
    if not target > 0 or (metric != Autoscaler.Metric.REQUESTS and target > 100):
        upper = "" if metric == Autoscaler.Metric.REQUESTS else " and at most 100"
        return {"target": [f"Give a number above 0{upper}."]}
    if service.stack.current_revision is None:
        return {"metric": ["This stack has no revision yet."]}
    limits = metrics.limits(service)
    if metric == Autoscaler.Metric.CPU and not limits.cpus:
        return {
            "metric": [
                f"A CPU target is a percent of the CPU limit, and {service.name} has none: "
                "set cpus (or deploy.resources.limits.cpus) in its compose file."
            ]
        }
    if metric == Autoscaler.Metric.MEMORY and not limits.memory:
        return {
            "metric": [
                f"A memory target is a percent of the memory limit, and {service.name} has "
                "none: set mem_limit (or deploy.resources.limits.memory)."
            ]
        }
    if metric == Autoscaler.Metric.REQUESTS and not service.routes.exists():
        return {
            "metric": [
                f"Requests are counted on the frontier, and no route leads to {service.name}: "
                "add a route first."
            ]
        }
    return {}


@transaction.atomic
def configure(actor: Any, service: Service, values: dict[str, Any]) -> Autoscaler:
    """Set (or create) the service's autoscaling; members and above. Values missing
    from `values` keep their current (or default) setting."""
    require_role(actor, service.stack.tenant, Role.MEMBER)
    # The row first, then (check_scale's quota) the tenant: the order `evaluate` takes
    # them in, so a change of settings and a decision never deadlock.
    scaler = Autoscaler.objects.select_for_update().filter(service=service).first() or Autoscaler(
        service=service, tenant=service.stack.tenant
    )
    merged = {name: values.get(name, getattr(scaler, name)) for name in FIELDS}
    check_settings(actor, service, merged)
    was_on = scaler.pk is not None and scaler.enabled
    for name, value in merged.items():
        setattr(scaler, name, value)
    if not scaler.enabled:
        scaler.last_decision, scaler.last_refusal = "", ""
    scaler.save()
    details = f"{scaler.describe()}, step {scaler.step}, cooldown {scaler.cooldown_seconds} s"
    if not scaler.enabled:
        message = f"Turned autoscaling of {service.name} off"
    elif was_on:
        message = f"Changed autoscaling of {service.name}: {details}"
    else:
        message = f"Turned autoscaling of {service.name} on: {details}"
    record_event(
        "autoscaling.configure",
        actor=actor,
        tenant=service.stack.tenant,
        obj=service,
        message=message,
        data={name: merged[name] for name in FIELDS},
    )
    return scaler


def refuse_manual_scale(service: Service) -> None:
    """BERTH_MANUAL_SCALE_CHECKS: a person may not scale a service the autoscaler
    manages (it would undo the change at its next look); they change its bounds or turn
    it off, both visible on the service's page and in the activity log."""
    scaler = Autoscaler.objects.filter(service=service, enabled=True).first()
    if scaler is not None:
        raise ValidationError(
            {
                "replicas": (
                    f"Autoscaling manages {service.name} ({scaler.describe()}): change its "
                    "minimum and maximum, or turn autoscaling off, to scale it by hand."
                )
            }
        )


def decisions(service: Service, limit: int = 20) -> QuerySet[Event]:
    """The service's recent autoscaling events, newest first (its tenant's only)."""
    return Event.objects.filter(
        tenant_id=service.stack.tenant_id,
        object_type="service",
        object_id=str(service.pk),
        action__startswith="autoscaling.",
    ).order_by("-pk")[:limit]


# --- the autoscaler -----------------------------------------------------------------------


def evaluate_all(now: datetime | None = None) -> int:
    """Judge every service with autoscaling on, each in its own transaction (one
    failing never stops the others); how many scaled."""
    scaled = 0
    for pk in Autoscaler.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True):
        try:
            decision = evaluate(pk, now=now)
        except Exception:  # noqa: BLE001 - one service's failure is logged, the others go on
            log.exception("autoscaling: evaluating %s failed", pk)
            continue
        scaled += bool(decision and decision.changes and decision.action != "refused")
    return scaled


def evaluate(pk: int, now: datetime | None = None) -> planning.Decision | None:
    """Judge one service now: read its metrics, plan, scale through the deployments'
    service when the plan says so. The row is claimed (skipped when another worker
    holds it), so two beats never both scale one service. None when off or claimed."""
    now = now or timezone.now()
    with transaction.atomic():
        scaler = (
            Autoscaler.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, enabled=True)
            .first()
        )
        if scaler is None:
            return None
        service = Service.objects.select_related("stack__current_revision").get(
            pk=scaler.service_id
        )
        decision = _decide(scaler, service, now)
        if decision.changes:
            decision = _act(scaler, service, decision, now)
        scaler.last_evaluated_at = now
        scaler.last_decision = decision.reason
        scaler.last_figures = decision.figures
        scaler.save()
    return decision


def _decide(scaler: Autoscaler, service: Service, now: datetime) -> planning.Decision:
    stack = service.stack
    busy = _busy(stack)
    if busy:
        return planning.Decision("hold", service.scale, service.scale, busy)
    unmeasurable = _target_problems(service, scaler.metric, scaler.target)
    if unmeasurable:  # changed since it was set: said on the page, not guessed around
        reason = next(iter(unmeasurable.values()))[0]
        return planning.Decision("hold", service.scale, service.scale, reason)
    start = now - timedelta(seconds=settings.BERTH_AUTOSCALING_WINDOW_SECONDS)
    if scaler.last_scaled_at and scaler.last_scaled_at > start:
        start = scaler.last_scaled_at  # what the service did since its last change only
    observed, samples = metrics.observe(scaler, service, start, now)
    return planning.plan(
        planning.Settings(
            min_replicas=scaler.min_replicas,
            max_replicas=scaler.max_replicas,
            target=scaler.target,
            cooldown_seconds=scaler.cooldown_seconds,
            step=scaler.step,
            margin=settings.BERTH_AUTOSCALING_SCALE_IN_MARGIN,
        ),
        service.scale,
        observed,
        now=now,
        last_scaled_at=scaler.last_scaled_at,
        samples=samples,
    )


def _busy(stack: Stack) -> str:
    """Why the stack cannot be scaled now ("" when it can): stopped, being removed, or
    another operation (a rollout, the previous scale) still running."""
    if stack.desired_state != Stack.Desired.RUNNING:
        return f"the stack is {stack.get_desired_state_display().lower()}"
    if stack.current_revision_id is None:
        return "the stack has no revision"
    if stack.operation:
        return f"waiting for the {stack.operation} in progress"
    return ""


def _act(
    scaler: Autoscaler, service: Service, decision: planning.Decision, now: datetime
) -> planning.Decision:
    """Scale as a manual scale would; record the decision, or the refusal (once per
    distinct reason, not every interval)."""
    word = "out" if decision.action == "out" else "in"
    why = f"{decision.reason} ({metric_label(scaler)})"
    try:
        with transaction.atomic():
            deployments.scale(None, service, decision.desired, automatic=why)
    except ValidationError as exc:
        refusal = " ".join(exc.messages)
        if refusal != scaler.last_refusal:
            record_event(
                "autoscaling.refused",
                tenant=service.stack.tenant,
                obj=service,
                outcome=Event.Outcome.FAILURE,
                message=(
                    f"Autoscaling wanted {service.name} at {decision.desired} "
                    f"({why}); refused: {refusal}"
                ),
                data={**decision.figures, "desired": decision.desired, "refusal": refusal},
            )
        scaler.last_refusal = refusal
        return planning.Decision(
            "refused", decision.current, decision.desired, f"refused: {refusal}", decision.figures
        )
    scaler.last_scaled_at = now
    scaler.last_refusal = ""
    record_event(
        f"autoscaling.scale_{word}",
        tenant=service.stack.tenant,
        obj=service,
        message=(
            f"Scaled {service.name} {word} from {decision.current} to {decision.desired}: {why}"
        ),
        data={**decision.figures, "desired": decision.desired, "metric": scaler.metric},
    )
    return decision


def metric_label(scaler: Autoscaler) -> str:
    return {
        Autoscaler.Metric.CPU: "CPU % of the limit",
        Autoscaler.Metric.MEMORY: "memory % of the limit",
        Autoscaler.Metric.REQUESTS: "requests/s per container",
    }[scaler.metric]
