"""Celery task of autoscaling: thin, run by beat."""

from celery import shared_task

from apps.autoscaling import services


@shared_task(name="autoscaling.evaluate_all", acks_late=True, ignore_result=True)
def evaluate_all() -> int:
    """Judge every autoscaled service (every BERTH_AUTOSCALING_INTERVAL_SECONDS); how
    many were scaled."""
    return services.evaluate_all()
