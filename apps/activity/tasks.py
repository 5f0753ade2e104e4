"""Celery tasks for the activity log: thin wrappers around apps.activity.services."""

from celery import shared_task

from apps.activity import services

# One run deletes at most this many batches; beat runs it again soon after.
MAX_BATCHES = 200


@shared_task(name="activity.prune_events", acks_late=True, ignore_result=True)
def prune_events() -> int:
    """Delete events past BERTH_EVENT_RETENTION_DAYS; safe to run twice or at once."""
    return services.prune_events(max_batches=MAX_BATCHES)
