"""Celery tasks for certificates: thin, id-carrying, safe to run twice.

`traffic.maintain_certificates` runs from beat (BERTH_CERTIFICATE_CHECK_SECONDS): it
creates what routes ask for, marks expired certificates, and queues ACME orders that
are new, due for renewal (BERTH_ACME_RENEW_DAYS before the end) or failed long enough
ago to try again. A route change does not wait for it: the `frontier_changed` receiver
below queues `traffic.ensure_certificates` when a host name lacks its certificate.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.dispatch import receiver

from apps.core.queue import enqueue, enqueue_on_commit
from apps.deployments.signals import frontier_changed
from apps.traffic import certificates
from apps.traffic.models import Certificate

log = logging.getLogger(__name__)


@shared_task(name="traffic.issue_certificate", acks_late=True, ignore_result=True)
def issue_certificate(certificate_id: int) -> None:
    """Order one ACME certificate (a second worker with the same id does nothing)."""
    certificates.issue_acme(certificate_id)


@shared_task(name="traffic.ensure_certificates", acks_late=True, ignore_result=True)
def ensure_certificates(stack_id: int | None = None) -> None:
    """Generate the self-signed certificates routes ask for, queue their ACME orders."""
    for certificate_id in certificates.ensure_certificates(stack_id):
        enqueue(issue_certificate, certificate_id)


@shared_task(name="traffic.maintain_certificates", acks_late=True, ignore_result=True)
def maintain_certificates() -> int:
    """The periodic pass (see the module docstring); returns how many orders it queued."""
    due = certificates.maintain()
    for certificate_id in due:
        enqueue(issue_certificate, certificate_id)
    return len(due)


@receiver(frontier_changed, dispatch_uid="traffic.certificates_needed")
def queue_missing_certificates(
    sender: Any, stack_id: int | None = None, reason: str = "", **kwargs: Any
) -> None:
    """A route that asks for a certificate it has not got gets one without waiting for
    the periodic pass. Certificate changes themselves (sender Certificate) are skipped.
    Like the frontier's receiver, it never raises into the sender."""
    if sender is Certificate:
        return
    try:
        needed = certificates.needs_certificates(stack_id)
    except Exception:  # the sender (a reconcile, a drain) must never fail because of this
        log.exception("checking the certificates of stack %s failed", stack_id)
        return
    if needed:
        enqueue_on_commit(ensure_certificates, stack_id)
