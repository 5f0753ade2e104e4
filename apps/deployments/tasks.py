"""Celery tasks for deployments: thin, id-carrying, safe to run twice (acks_late).

The tasks that act for one tenant run inside one of the tenant's worker slots
(`apps.core.queue.tenant_slot`): a tenant at its bound has the task parked, and sent
again when one of its slots is given back, so its slow engine calls (or its forty
deployments at once) never hold every worker, and the worker moves on to other tenants'
work at once instead of re-sending the task every few seconds.
"""

import time

from celery import shared_task
from django.conf import settings

from apps.activity.services import record_event
from apps.core.queue import enqueue, parked, single_flight, tenant_slot, wake_parked
from apps.deployments import (
    probes,
    reconciler,
    retirement,  # noqa: F401 - registers the retirement tasks
)
from apps.deployments.models import Container, Rollout, Route, Stack
from apps.deployments.signals import frontier_changed, remove_container
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.models import Host


def _tenant_of_stack(stack_id: int) -> int | None:
    return Stack.objects.filter(pk=stack_id).values_list("tenant_id", flat=True).first()


def _slot_ttl(task) -> float:
    """A slot lives as long as the task may: a worker killed by the hard limit frees it."""

    return float(task.time_limit or settings.CELERY_TASK_TIME_LIMIT) + 5


def _parked(task, *args) -> str:
    """This call, to wait in its tenant's list for a slot, for the queue it came from (not
    a retry: no retry budget is used up by waiting)."""
    queue = (task.request.delivery_info or {}).get("routing_key")
    return parked(task.name, args, queue=queue)


def _pass_the_slot_on() -> None:
    """A task whose stack or container is gone (removed while the task waited parked)
    takes no slot, so it gives back none, and nothing would send the tenant's next parked
    task until the beat's sweep: a stack removed while another of the tenant's operations
    ran stayed "removing" until then. Its tenant is unknown now, so every tenant with a
    free slot and parked work is woken (what the sweep does; rare, and cheap)."""
    wake_parked()


@shared_task(name="deployments.reconcile_stack", bind=True, acks_late=True, ignore_result=True)
def reconcile_stack(self, stack_id: int) -> None:
    """Converge one stack inside one of its tenant's worker slots; another worker holding
    its lease makes this a no-op."""
    tenant_id = _tenant_of_stack(stack_id)
    if tenant_id is None:
        _pass_the_slot_on()
        return
    with tenant_slot(tenant_id, ttl=_slot_ttl(self), park=_parked(self, stack_id)) as held:
        if not held:
            return  # parked: sent again when one of the tenant's slots is given back
        reconciler.reconcile_stack(stack_id)


@shared_task(
    name="deployments.container_action",
    bind=True,
    acks_late=True,
    ignore_result=True,
    max_retries=30,
)
def container_action(self, container_id: int, action: str) -> None:
    """Start/stop/restart/remove one container under its stack's lease, reconcile (which
    mirrors the new state and recreates a removed replica), then record what happened:
    that Event is what refreshes the stack page. A lease held by a running reconcile
    means: try again in a second."""
    container = (
        Container.objects.select_related("host", "stack__tenant").filter(pk=container_id).first()
    )
    if container is None:
        _pass_the_slot_on()
        return
    with tenant_slot(
        container.stack.tenant_id,
        ttl=_slot_ttl(self),
        park=_parked(self, container_id, action),
    ) as held:
        if not held:
            return  # parked: sent again when one of the tenant's slots is given back
        _container_action(self, container, action)


def _container_action(task, container, action: str) -> None:
    token = reconciler.claim(container.stack_id)
    if token is None:
        raise task.retry(countdown=1)
    try:
        outcome, message = _engine_action(container, action)
    finally:
        reconciler.release(container.stack_id, token)
    reconciler.reconcile_stack(container.stack_id)
    record_event(
        f"container.{action}",
        tenant=container.stack.tenant,
        obj=container.stack,
        outcome=outcome,
        message=message,
        data={"stack": container.stack_id, "container": container.name},
    )


DONE = {"start": "Started", "stop": "Stopped", "restart": "Restarted", "remove": "Removed"}


def _drain_first(container) -> None:
    """A person's stop, restart or remove of a routed container follows the drain
    protocol too: out of the frontier, requests under way finished, then the action."""
    if not Route.objects.filter(service_id=container.service_id).exists():
        return
    Container.objects.filter(pk=container.pk).update(draining=True)
    frontier_changed.send_robust(sender=Container, stack_id=container.stack_id, reason="drain")
    time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)


def _engine_action(container, action: str) -> tuple[str, str]:
    if action in ("stop", "restart", "remove"):
        _drain_first(container)
    try:
        with get_engine(container.host) as engine:
            if action == "remove":
                remove_container(container.host, engine, container.engine_id)
            else:
                getattr(engine, action)(container.engine_id)
    except EngineError as exc:
        return "failure", f"Could not {action} {container.name}: {exc}"
    finally:
        if action in ("start", "restart"):
            # Back in once healthy: the reconcile that follows mirrors the container's
            # health (starting, then healthy) and tells the frontier.
            Container.objects.filter(pk=container.pk).update(draining=False)
    return "success", f"{DONE[action]} {container.name}"


@shared_task(name="deployments.reconcile_host", acks_late=True, ignore_result=True)
def reconcile_host(host_id: int) -> None:
    """The periodic pass over one host, one at a time: during a burst of deployments a
    pass deploys the stacks it finds not yet deployed, one after another, for minutes; a
    second pass over the same host meanwhile would only hold a second worker for the
    same stacks (each one's lease lets only one of them act), away from the tenants' own
    tasks."""
    with single_flight(f"reconcile-host:{host_id}", ttl=_host_pass_ttl()) as mine:
        if mine:
            reconciler.reconcile_host(host_id)


def _host_pass_ttl() -> float:
    limits = settings.CELERY_TASK_ANNOTATIONS.get("deployments.reconcile_host", {})
    return float(limits.get("time_limit", settings.CELERY_TASK_TIME_LIMIT)) + 5


@shared_task(name="deployments.reconcile_all", acks_late=True, ignore_result=True)
def reconcile_all() -> int:
    """Beat: one reconcile per host (unreachable ones too, so their stacks show unknown),
    each expiring after one interval so a backed-up worker skips stale passes."""

    ids = list(Host.objects.order_by("pk").values_list("pk", flat=True))
    for host_id in ids:
        reconcile_host.apply_async((host_id,), expires=settings.BERTH_RECONCILE_SECONDS)
    wake_parked()  # what a killed worker's slot, or a failed send, left parked
    return len(ids)


# --- health -------------------------------------------------------------------------------


@shared_task(name="deployments.check_health_all", acks_late=True, ignore_result=True)
def check_health_all() -> int:
    """Beat: one health pass per active host, each expiring after one interval."""

    ids = list(Host.objects.filter(state=Host.State.ACTIVE).values_list("pk", flat=True))
    for host_id in ids:
        check_health.apply_async((host_id,), expires=settings.BERTH_HEALTH_SECONDS)
    return len(ids)


@shared_task(name="deployments.check_health", acks_late=True, ignore_result=True)
def check_health(host_id: int) -> None:
    """Berth's probes of one host's containers; those unhealthy past their threshold
    drained, removed and started again."""
    health_pass(host_id)


def health_pass(host_id: int) -> dict[str, int]:
    """One pass (probes.check_host), then each unhealthy container replaced under its
    stack's lease and its stack reconciled, which starts the replica again and writes
    the health the probes found. Returns counters for logs and tests."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return {}
    replaced: set[int] = set()
    with get_engine(host) as engine:
        try:
            found = probes.check_host(host, engine)
        except EngineError:
            return {}
        for item in found.unhealthy:
            if _replace_unhealthy(host, engine, item):
                replaced.add(item.stack.pk)
    for stack_id in probes.routed_stacks(found.changed):
        frontier_changed.send(sender=Container, stack_id=stack_id, reason="health")
    cleared = {s.stack_id for s in probes.clear_flapping(found.stacks)}
    for stack_id in sorted(found.changed | replaced | cleared):
        _reconcile_in_slot(stack_id)
    return {"probed": found.probed, "changed": len(found.changed), "replaced": len(replaced)}


def _reconcile_in_slot(stack_id: int) -> None:
    """Reconcile now (the health it found is written, a removed replica started again)
    inside one of the tenant's worker slots, as the periodic reconcile does; for a tenant
    at its bound, queued (the task waits for a slot)."""
    tenant_id = _tenant_of_stack(stack_id)
    if tenant_id is None:
        return
    with tenant_slot(tenant_id, ttl=reconciler.lease_seconds()) as held:
        if held:
            reconciler.reconcile_stack(stack_id)
            return
    enqueue(reconcile_stack, stack_id)


def _replace_unhealthy(host, engine, item: probes.Unhealthy) -> bool:
    """Leave a service in the middle of a rollout to the rollout; else replace the
    container inside the tenant's worker slot and the stack's lease (another worker
    holding it: the next pass tries again)."""
    stack = item.stack
    if Rollout.objects.filter(stack=stack, service=item.service, state__in=Rollout.ACTIVE).exists():
        return False
    with tenant_slot(stack.tenant_id, ttl=reconciler.lease_seconds()) as held:
        token = reconciler.claim(stack.pk) if held else None
        if token is None:
            return False
        try:
            return probes.replace_unhealthy(host, engine, item, _stop_timeout(stack, item.service))
        except EngineError:
            return False
        finally:
            reconciler.release(stack.pk, token)


def _stop_timeout(stack: Stack, service: str) -> int:
    """The service's grace period, capped, as the reconciler stops it."""
    spec = stack.current_revision.spec if stack.current_revision else {}
    grace = ((spec.get("project") or {}).get("services") or {}).get(service, {})
    seconds = grace.get("stop_grace_period") or 10
    return min(int(seconds), reconciler.max_stop_grace())
