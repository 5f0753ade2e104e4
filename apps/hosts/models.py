"""Docker engines that Berth drives: the local one by default, more added by operators."""

from typing import Any

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

    Written by the host's heartbeat (apps.hosts.services.record_cluster), one pass per
    cluster, except for its engine endpoint (`engine_*`), which a platform admin sets
    (services.set_node_engine) and the heartbeat only checks. A node the manager no
    longer lists is kept with `gone_at` set (and an Event), never deleted silently:
    someone removed it from the swarm, or it was lost.
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
    # The node's own engine, set by a platform admin (services.set_node_engine) so that
    # shells, stats and inspect reach tasks on this node too. Never written by the
    # heartbeat's node reading (record_cluster), only checked by it: `engine_verified_at`
    # is when that engine last proved to be this node (its Swarm NodeID), null when the
    # last check failed, with the reason in `engine_error`. Platform admins only.
    engine_endpoint = models.CharField(max_length=255, blank=True)
    engine_tls_ca_cert = models.TextField(blank=True)
    engine_tls_client_cert = models.TextField(blank=True)
    engine_tls_client_key = models.TextField(blank=True)
    engine_verified_at = models.DateTimeField(null=True, blank=True)
    engine_error = models.TextField(blank=True)
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
    def reaches_engine(self) -> bool:
        return self.engine_reached(self.is_endpoint, self.engine_endpoint, self.engine_verified_at)

    @staticmethod
    def engine_reached(is_endpoint: bool, engine_endpoint: str, verified_at: Any) -> bool:
        """Whether Berth reaches a node's engine (so the shell, stats and inspect of its
        tasks are offered): it is the host's endpoint, or it has an engine endpoint of
        its own that the last check found to be this node. Pages reading `values()`
        call it with the three columns."""
        return bool(is_endpoint or (engine_endpoint and verified_at))

    @property
    def engine_uses_tls(self) -> bool:
        return self.engine_endpoint.startswith("tcp://") and bool(self.engine_tls_client_cert)

    @property
    def name(self) -> str:
        return self.hostname or self.node_id[:12]

    @property
    def engine_gap(self) -> str:
        """Why Berth does not reach this node's engine now, "" when it does (the host's
        endpoint, or its own endpoint as the last check found it, on a ready node): the
        metrics collector measures the tasks of the nodes without one, and the pages say
        this sentence of the others. It may name the endpoint: platform admins only."""
        if self.gone:
            return f"node {self.name} is no longer in the swarm"
        if self.state != "ready":
            return f"node {self.name} is {self.state}"
        if self.is_endpoint:
            return ""
        if not self.engine_endpoint:
            return f"node {self.name} has no engine endpoint"
        if not self.engine_verified_at:
            return f"the engine endpoint of node {self.name} failed its last check: " + (
                self.engine_error or "not checked yet"
            )
        return ""

    @property
    def shown_state(self) -> str:
        """What the page says: Swarm's state, or "gone" once the manager forgot it."""
        return "gone" if self.gone else self.state


#: What the Swarm driver reads of a node with an engine endpoint (engine.swarm.node_engine_of).
NODE_ENGINE_FIELDS = (
    "id",
    "host_id",
    "node_id",
    "hostname",
    "engine_endpoint",
    "engine_tls_ca_cert",
    "engine_tls_client_cert",
    "engine_tls_client_key",
)


def prefetch_node_engines(hosts: list[Host]) -> None:
    """Set `host.engine_nodes` on each Swarm cluster host: its nodes that have an engine
    endpoint (one query). The Swarm driver reads them from there, so a websocket
    consumer's driver runs no query in its async context."""
    swarms = [h for h in hosts if h.is_swarm and not hasattr(h, "engine_nodes")]
    if swarms:
        nodes = SwarmNode.objects.exclude(engine_endpoint="").only(*NODE_ENGINE_FIELDS)
        prefetch = models.Prefetch("swarm_nodes", queryset=nodes, to_attr="engine_nodes")
        models.prefetch_related_objects(swarms, prefetch)
