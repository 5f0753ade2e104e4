"""Celery tasks for deployments: thin, id-carrying, safe to run twice (acks_late)."""

from celery import shared_task

from apps.deployments import reconciler
from apps.hosts.models import Host


@shared_task(name="deployments.reconcile_stack", acks_late=True, ignore_result=True)
def reconcile_stack(stack_id: int) -> None:
    """Converge one stack; another worker holding its lease makes this a no-op."""
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
    from apps.activity.services import record_event
    from apps.deployments.models import Container

    container = (
        Container.objects.select_related("host", "stack__tenant").filter(pk=container_id).first()
    )
    if container is None:
        return
    token = reconciler.claim(container.stack_id)
    if token is None:
        raise self.retry(countdown=1)
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


def _engine_action(container, action: str) -> tuple[str, str]:
    from apps.hosts.engine import EngineError, get_engine

    try:
        with get_engine(container.host) as engine:
            if action == "remove":
                engine.remove(container.engine_id)
            else:
                getattr(engine, action)(container.engine_id)
    except EngineError as exc:
        return "failure", f"Could not {action} {container.name}: {exc}"
    return "success", f"{DONE[action]} {container.name}"


@shared_task(name="deployments.reconcile_host", acks_late=True, ignore_result=True)
def reconcile_host(host_id: int) -> None:
    reconciler.reconcile_host(host_id)


@shared_task(name="deployments.reconcile_all", acks_late=True, ignore_result=True)
def reconcile_all() -> int:
    """Beat: one reconcile per host (unreachable ones too, so their stacks show unknown),
    each expiring after one interval so a backed-up worker skips stale passes."""
    from django.conf import settings

    ids = list(Host.objects.order_by("pk").values_list("pk", flat=True))
    for host_id in ids:
        reconcile_host.apply_async((host_id,), expires=settings.BERTH_RECONCILE_SECONDS)
    return len(ids)
