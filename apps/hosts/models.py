"""Docker engines that Berth drives: the local one by default, more added by operators."""

from django.db import models

from apps.core.tenancy import is_platform_admin


class HostQuerySet(models.QuerySet):
    def visible_to(self, user, min_role: str = "viewer", token=None):
        """Hosts are platform infrastructure: only platform admins see them."""
        if is_platform_admin(user, token, min_role):
            return self
        return self.none()


class Host(models.Model):
    """A Docker engine endpoint (unix socket or TCP with TLS) and what it last reported."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        UNREACHABLE = "unreachable", "Unreachable"
        DRAINING = "draining", "Draining"

    class Kind(models.TextChoices):
        """Which engine driver drives the host (apps.hosts.engine.kinds.DRIVERS)."""

        ENGINE = "engine", "Single engine"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ENGINE)
    endpoint = models.CharField(
        max_length=255,
        help_text="unix:///var/run/docker.sock or tcp://host:2376",
    )
    tls_ca_cert = models.TextField(blank=True)
    tls_client_cert = models.TextField(blank=True)
    tls_client_key = models.TextField(blank=True)
    tls_verify = models.BooleanField(default=True)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    draining = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    engine_version = models.CharField(max_length=40, blank=True)
    api_version = models.CharField(max_length=20, blank=True)
    operating_system = models.CharField(max_length=200, blank=True)
    cpus = models.PositiveIntegerField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    containers_running = models.PositiveIntegerField(null=True, blank=True)
    containers_total = models.PositiveIntegerField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def uses_tls(self) -> bool:
        return self.endpoint.startswith("tcp://") and bool(self.tls_client_cert)
