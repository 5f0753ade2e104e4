"""The activity and audit log: one Event for every change made through a service."""

from django.conf import settings
from django.db import models

from apps.core.tenancy import TenantOwnedQuerySet


class EventQuerySet(TenantOwnedQuerySet):
    """Events without a tenant (platform events) are seen by platform admins only."""

    tenant_lookup = "tenant"


class Event(models.Model):
    """Who did what to which object, when, and how it ended."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        PENDING = "pending", "Pending"

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # The activity pages' plan (README, Performance): a tenant's newest events, and
        # each exact filter within a tenant, newest first, read straight from an index
        # (also the dropdowns' values, one skip scan each: apps/activity/filters.py);
        # an object's events (the stack page) by the object; the actor across tenants.
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "action", "created_at"], name="event_tenant_action_idx"),
            models.Index(
                fields=["tenant", "object_type", "created_at"], name="event_tenant_type_idx"
            ),
            models.Index(
                fields=["tenant", "actor_name", "created_at"], name="event_tenant_actor_idx"
            ),
            models.Index(fields=["object_type", "object_id", "id"], name="event_object_idx"),
            models.Index(fields=["actor_name", "created_at"], name="event_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.object_repr}".strip()
