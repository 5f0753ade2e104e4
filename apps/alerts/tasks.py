"""Celery tasks of alerting: thin wrappers, run by beat."""

from celery import shared_task

from apps.alerts import delivery, evaluation


@shared_task(name="alerts.evaluate", acks_late=True, ignore_result=True)
def evaluate() -> int:
    """One evaluation pass (every BERTH_ALERTS_INTERVAL_SECONDS), then the deliveries
    due (new ones, and retries whose back-off has passed); alerts that changed state."""
    result = evaluation.evaluate(send=False)
    delivery.deliver_due()
    return result.fired + result.resolved


@shared_task(name="alerts.deliver", acks_late=True, ignore_result=True)
def deliver() -> int:
    """Send the deliveries due now (queued by a pass that wrote some)."""
    return delivery.deliver_due()
