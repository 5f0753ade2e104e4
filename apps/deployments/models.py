"""Stacks and what they are made of: desired state in the database, mirrored containers.

The reconciler makes the engines match the stack's current Revision; these rows are
written by the service layer (desired state) and by the reconciler (observed state).
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from apps.core.tenancy import TenantOwnedQuerySet

dns_label_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens (a DNS label), starting and ending with a "
    "letter or digit.",
)


class StackQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "tenant"


class StackChildQuerySet(TenantOwnedQuerySet):
    tenant_lookup = "stack__tenant"


class Stack(models.Model):
    """A deployed application in an environment, from a template version or raw compose."""

    class State(models.TextChoices):
        DEPLOYING = "deploying", "Deploying"
        HEALTHY = "healthy", "Healthy"
        DEGRADED = "degraded", "Degraded"
        FAILED = "failed", "Failed"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        REMOVING = "removing", "Removing"
        UNKNOWN = "unknown", "Unknown"

    class Desired(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        REMOVED = "removed", "Removed"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="stacks")
    environment = models.ForeignKey(
        "tenants.Environment", on_delete=models.CASCADE, related_name="stacks"
    )
    name = models.CharField(max_length=63, validators=[dns_label_validator])
    template_version = models.ForeignKey(
        "catalog.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stacks",
    )
    answers = models.JSONField(default=dict, blank=True)
    compose = models.TextField(blank=True, help_text="The compose source before interpolation")
    desired_state = models.CharField(
        max_length=10, choices=Desired.choices, default=Desired.RUNNING
    )
    remove_volumes = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DEPLOYING)
    state_reason = models.TextField(blank=True)
    current_revision = models.ForeignKey(
        "deployments.Revision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    operation = models.CharField(max_length=20, blank=True)
    operation_started_at = models.DateTimeField(null=True, blank=True)
    operation_deadline = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    # Stacks deployed before engine names carried the installation id (migration 0002):
    # their volumes keep the old names, so no data moves; their containers are replaced
    # under the new names by the reconciler, which clears `legacy_containers` when done.
    legacy_volumes = models.JSONField(default=dict, blank=True, editable=False)
    legacy_containers = models.BooleanField(default=False, editable=False)
    # On a Swarm cluster: the node (its Swarm id) holding the stack's named volumes, chosen
    # at the first deploy; the services mounting them run there and are never moved.
    swarm_volume_node = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StackQuerySet.as_manager()

    class Meta:
        ordering = ["environment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="unique_stack_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Revision(models.Model):
    """An immutable snapshot of a stack's whole desired spec; rollback deploys an old one.

    `spec` is the parsed, interpolated and normalised compose project (plain JSON) plus
    the environment's hardening defaults, exactly what the reconciler converges to.
    """

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    template_version = models.ForeignKey(
        "catalog.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    answers = models.JSONField(default=dict, blank=True)
    compose = models.TextField(blank=True)
    summary = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=40, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StackChildQuerySet.as_manager()

    class Meta:
        ordering = ["stack", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "number"], name="unique_revision_number"),
        ]

    def __str__(self) -> str:
        return f"{self.stack.name} r{self.number}"


class Service(models.Model):
    """A service of a stack as last planned: name, image, desired scale and health."""

    class Health(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        STARTING = "starting", "Starting"
        UNHEALTHY = "unhealthy", "Unhealthy"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown"

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=63)
    image = models.CharField(max_length=255)
    scale = models.PositiveIntegerField(default=1)
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    health_reason = models.TextField(blank=True)
    # When Berth replaced an unhealthy container of this service (ISO times, newest
    # last, the last hour only): a service replaced again and again is flapping, and the
    # pages say so instead of hiding it behind fresh containers.
    replacements = models.JSONField(default=list, blank=True)
    flapping = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StackChildQuerySet.as_manager()

    class Meta:
        ordering = ["stack", "name"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "name"], name="unique_service_name"),
        ]

    def __str__(self) -> str:
        return f"{self.stack.name}/{self.name}"


class Container(models.Model):
    """A container the reconciler saw on an engine, mirrored for pages and the API.

    On a Swarm cluster host a row is one task of a Swarm service: `engine_id` is the
    task's id (stable from scheduling to shutdown, unlike its container's) and `node`
    the node Swarm placed it on (apps/deployments/swarm_tasks.py says what may be done
    with it).
    """

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="containers")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="containers")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="containers")
    engine_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    replica = models.PositiveIntegerField(default=1)
    revision = models.PositiveIntegerField(default=0)
    image = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=20, blank=True)
    health = models.CharField(max_length=20, blank=True)
    health_reason = models.TextField(blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    ports = models.JSONField(default=list, blank=True)
    user_stopped = models.BooleanField(default=False)
    # The container's address on the environment network: the frontier's backend server.
    address = models.CharField(max_length=45, blank=True)
    # Taken out of the frontier before it is stopped (drain, then stop); never re-added.
    draining = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    node = models.ForeignKey(
        "hosts.SwarmNode",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="containers",
        help_text="The Swarm node a task runs on (empty on a single engine)",
    )

    objects = StackChildQuerySet.as_manager()

    class Meta:
        ordering = ["stack", "service", "replica"]
        constraints = [
            models.UniqueConstraint(fields=["host", "engine_id"], name="unique_engine_container"),
        ]

    def __str__(self) -> str:
        return self.name


class HostnameClaim(models.Model):
    """A host name belongs to one tenant: the unique constraint makes it so, whatever
    two tenants do at the same moment. Claimed by the first route that uses it, released
    with the tenant's last route on it."""

    hostname = models.CharField(max_length=253, unique=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="hostname_claims"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class Route(models.Model):
    """A host name (and path prefix) on the frontier, sent to a port of a service.

    `origin` tells where it came from: a template's berth.yml (kept in step with the
    stack's current revision) or a user (the stack page, the API), kept until deleted.
    """

    class Origin(models.TextChoices):
        TEMPLATE = "template", "Template"
        USER = "user", "User"

    class Balance(models.TextChoices):
        ROUND_ROBIN = "roundrobin", "Round robin"
        LEAST_CONNECTIONS = "leastconn", "Least connections"

    class Tls(models.TextChoices):
        NONE = "none", "HTTP only"
        SELF_SIGNED = "self-signed", "Self-signed certificate"
        UPLOADED = "uploaded", "Uploaded certificate"
        ACME = "acme", "Automatic certificate (ACME)"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="routes")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="routes")
    service = models.ForeignKey("Service", on_delete=models.CASCADE, related_name="routes")
    hostname = models.CharField(max_length=253)
    path = models.CharField(max_length=200, default="/")
    port = models.PositiveIntegerField()
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.USER)
    balance = models.CharField(max_length=10, choices=Balance.choices, default=Balance.ROUND_ROBIN)
    sticky = models.BooleanField(default=False)
    tls = models.CharField(max_length=12, choices=Tls.choices, default=Tls.NONE)
    redirect_https = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["hostname", "path"]
        constraints = [
            models.UniqueConstraint(fields=["hostname", "path"], name="unique_route"),
        ]

    def __str__(self) -> str:
        return f"{self.hostname}{self.path}"


class Rollout(models.Model):
    """How a service moves from one revision to the next: rolling batches, or a canary
    that takes a share of the route's traffic until promoted or aborted.

    One row per change of a running service; the reconciler advances it and is safe to
    run again after a crash (the row and the containers' revision labels say where it is).
    """

    class Strategy(models.TextChoices):
        ROLLING = "rolling", "Rolling"
        CANARY = "canary", "Canary"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        CANARY = "canary", "Canary running"
        PROMOTING = "promoting", "Promoting"
        ABORTING = "aborting", "Aborting"
        DONE = "done", "Done"
        ROLLED_BACK = "rolled-back", "Rolled back"
        ABORTED = "aborted", "Aborted"
        FAILED = "failed", "Failed"

    ACTIVE = (State.RUNNING, State.CANARY, State.PROMOTING, State.ABORTING)

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="rollouts")
    service = models.CharField(max_length=63)
    strategy = models.CharField(max_length=10, choices=Strategy.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    from_revision = models.PositiveIntegerField(default=0)
    to_revision = models.PositiveIntegerField(default=0)
    canary_weight = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = StackChildQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["stack", "service"],
                condition=models.Q(state__in=["running", "canary", "promoting", "aborting"]),
                name="one_active_rollout_per_service",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stack}/{self.service} r{self.from_revision}->r{self.to_revision}"


class Secret(models.Model):
    """An entry of an environment's store: a secret (write-only: its value is never
    shown again once saved) or a config (not secret: members may read it). Compose
    files name entries in their top-level `secrets:`/`configs:` and Berth delivers them
    as files (apps/deployments/secret_store.py says how and where).

    The value is encrypted at rest (apps.core.crypto, its own key purpose); `version`
    counts its values (1 at creation, +1 at each rotation) and `digest` is a keyed
    digest of the value (HMAC, so it tells whether two values are the same without
    giving a way to guess the value), shown in place of the value.
    """

    class Kind(models.TextChoices):
        SECRET = "secret", "Secret"
        CONFIG = "config", "Config"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "tenants.Environment", on_delete=models.CASCADE, related_name="secrets"
    )
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.SECRET)
    name = models.CharField(max_length=64)
    value_encrypted = models.TextField(editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    digest = models.CharField(max_length=16, editable=False)
    size = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["environment", "kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "kind", "name"], name="unique_secret_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the value, not even encrypted
        return f"<Secret {self.kind} {self.name} v{self.version}>"
