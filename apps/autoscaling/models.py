"""A service's autoscaling settings and what the autoscaler last made of them."""

from __future__ import annotations

from django.db import models

from apps.core.tenancy import TenantOwnedQuerySet


class AutoscalerQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "tenant"


class Autoscaler(models.Model):
    """One service's autoscaling: the bounds, what to aim at, and how fast to move.

    The tenant is the stack's, set by the service layer (never from a request), so
    `visible_to` filters these rows as it does every tenant-owned one. The `last_*`
    fields are the autoscaler's latest judgement, shown on the service's page even when
    it changed nothing (a hold is not worth an Event every interval)."""

    class Metric(models.TextChoices):
        CPU = "cpu", "CPU % of the limit"
        MEMORY = "memory", "memory % of the limit"
        REQUESTS = "requests", "requests per second per container"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    service = models.OneToOneField(
        "deployments.Service", on_delete=models.CASCADE, related_name="autoscaler"
    )
    enabled = models.BooleanField(default=True)
    min_replicas = models.PositiveSmallIntegerField(default=1)
    max_replicas = models.PositiveSmallIntegerField(default=5)
    metric = models.CharField(max_length=10, choices=Metric.choices, default=Metric.CPU)
    target = models.FloatField(default=70.0)
    cooldown_seconds = models.PositiveIntegerField(default=120)
    step = models.PositiveSmallIntegerField(default=2)
    last_scaled_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_decision = models.TextField(blank=True)
    last_figures = models.JSONField(default=dict, blank=True)
    last_refusal = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AutoscalerQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["enabled"], name="autoscaler_enabled")]

    def __str__(self) -> str:
        return f"autoscaling of {self.service_id}"

    @property
    def unit(self) -> str:
        return "req/s per container" if self.metric == self.Metric.REQUESTS else "% of the limit"

    def describe(self) -> str:
        """One line for pages and events: `2-6 replicas, CPU 50% of the limit`."""
        what = {"cpu": "CPU", "memory": "memory", "requests": "requests"}[self.metric]
        target = f"{self.target:g}"
        aim = f"{target} req/s per container" if self.metric == "requests" else f"{target}%"
        return f"{self.min_replicas}-{self.max_replicas} replicas, {what} {aim}"
