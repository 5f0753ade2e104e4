"""Alert rules, the alerts they raise, silences, notification channels and deliveries.

A rule belongs to a tenant, optionally narrowed to one environment (its scope) and to a
stack and service. Each evaluation pass (apps.alerts.evaluation) finds the rule's
subjects (a container, a route, a host, a repository, a certificate, the registry) and
keeps at most one *open* alert (pending or firing) per rule and subject: a partial
unique constraint makes a second open row impossible, whatever two passes do at once.
A resolved alert stays as history; the next time the condition holds, a new row opens.

Deliveries are the outbox of notifications: written in the same transaction as the
state change that calls for them (one per alert, channel and event, unique), sent after
commit, retried with back-off; so a crash between the two loses nothing and a pass run
twice sends nothing twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.tenancy import TenantOwnedQuerySet


class AlertChannel(models.Model):
    """A named destination of a tenant's notifications: e-mail addresses, or a webhook
    (a JSON body signed with HMAC-SHA256 by the channel's secret, stored encrypted)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # E-mail: addresses separated by commas; webhook: the http(s) URL.
    target = models.CharField(max_length=1000)
    secret_encrypted = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="alerts_channel_name")
        ]

    def __str__(self) -> str:
        return self.name


class AlertRule(models.Model):
    """What to watch, when it is a problem (comparison, threshold, for how long), and
    whom to tell (channels). Which fields a kind reads is said in `kinds.KINDS`."""

    class Kind(models.TextChoices):
        METRIC = "metric", "Metric threshold"
        RESTARTS = "restarts", "Container restarts"
        FLAPPING = "flapping", "Health flapping"
        HOST_UNREACHABLE = "host_unreachable", "Host unreachable"
        REGISTRY_QUOTA = "registry_quota", "Registry quota nearly full"
        HOT_IMAGE = "hot_image", "Hot image"
        CERTIFICATE = "certificate", "Certificate expiring"
        DISK_FULL = "disk_full", "Disk nearly full"

    class Comparison(models.TextChoices):
        GT = "gt", ">"
        GE = "ge", "≥"
        LT = "lt", "<"
        LE = "le", "≤"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "tenants.Environment", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    stack = models.ForeignKey(
        "deployments.Stack", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    service_name = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    metric = models.CharField(max_length=32, blank=True)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default="gt")
    threshold = models.FloatField(default=0)
    duration_seconds = models.PositiveIntegerField(default=0)
    window_seconds = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="rules")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One rule's condition on one subject, from the first pass that saw it true
    (pending until the rule's duration has passed, then firing) to the pass that saw
    it false again (resolved; kept as history)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    OPEN = (State.PENDING, State.FIRING)

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject_key = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    value = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The last pass that changed it (state, value or message): a steady pass writes nothing.
    evaluated_at = models.DateTimeField()
    silenced_until = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject_key"],
                condition=Q(state__in=["pending", "firing"]),
                name="alerts_one_open_alert",
            )
        ]
        indexes = [models.Index(fields=["tenant", "state"], name="alerts_alert_tenant_state")]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.subject_key} {self.state}"


class Silence(models.Model):
    """No notification (and no badge) until `ends_at` for the alerts of `rule`, or of
    any of the tenant's rules, whose subject is `subject_key` (blank: every subject)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    subject_key = models.CharField(max_length=200, blank=True)
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-ends_at", "-pk"]

    def __str__(self) -> str:
        return f"silence {self.rule_id or '*'}:{self.subject_key or '*'} until {self.ends_at}"

    def matches(self, alert: Alert) -> bool:
        return (self.rule_id is None or self.rule_id == alert.rule_id) and (
            not self.subject_key or self.subject_key == alert.subject_key
        )


class Delivery(models.Model):
    """One notification of one alert event to one channel, and how sending it went:
    attempts, the next attempt's time (exponential back-off), the last status or error."""

    class Event(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=8, choices=Event.choices)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "event"], name="alerts_one_delivery_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} of alert {self.alert_id} to {self.channel_id}: {self.state}"
