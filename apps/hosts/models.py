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
        SWARM = "swarm", "Swarm cluster"

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

    @property
    def is_swarm(self) -> bool:
        return self.kind == self.Kind.SWARM


class SwarmNode(models.Model):
    """A node of a Swarm cluster host, as its manager last described it.

    Written only by the host's heartbeat (apps.hosts.services.record_cluster), one pass
    per cluster. A node the manager no longer lists is kept with `gone_at` set (and an
    Event), never deleted silently: someone removed it from the swarm, or it was lost.
    `tasks` holds the tasks the manager placed on it at that heartbeat, so the host page
    shows them without asking the engine during the request.
    """

    class Role(models.TextChoices):
        MANAGER = "manager", "Manager"
        WORKER = "worker", "Worker"

    class Availability(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSE = "pause", "Paused"
        DRAIN = "drain", "Drained"

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="swarm_nodes")
    node_id = models.CharField(max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    availability = models.CharField(max_length=10, choices=Availability.choices)
    # Swarm's own words: ready, down, unknown, disconnected
    state = models.CharField(max_length=20)
    manager_status = models.CharField(max_length=20, blank=True)
    message = models.CharField(max_length=500, blank=True)
    address = models.CharField(max_length=100, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    engine_version = models.CharField(max_length=40, blank=True)
    cpus = models.FloatField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    tasks = models.JSONField(default=list, blank=True)
    # The node whose engine the host's endpoint is (the manager Berth talks to): the
    # only node whose containers Berth reaches, so shells and stats work for its tasks.
    is_endpoint = models.BooleanField(default=False)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["host", "-role", "hostname"]
        constraints = [
            models.UniqueConstraint(fields=["host", "node_id"], name="swarm_node_unique_per_host")
        ]

    def __str__(self) -> str:
        return f"{self.hostname or self.node_id[:12]} ({self.host})"

    @property
    def gone(self) -> bool:
        return self.gone_at is not None

    @property
    def shown_state(self) -> str:
        """What the page says: Swarm's state, or "gone" once the manager forgot it."""
        return "gone" if self.gone else self.state
