"""The central log store: one row per collected line, one cursor per container.

Lines are denormalised (tenant, environment, stack, service and container names copied
onto each row) and tied to their `LogSource`, never to a `Container` row: the reconciler
deletes a removed container's row, and its lines must stay until retention removes them.
Full-text search needs a column the ORM does not declare: a generated `tsvector` with a
GIN index on PostgreSQL, an FTS5 table kept by triggers on SQLite (migration 0001;
`apps/logs/search.py` queries both).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.roles import Role
from apps.core.tenancy import TenantOwnedQuerySet, is_platform_admin, visible_tenant_ids


class LogSource(models.Model):
    """One container's log as the collector follows it, with its resume cursor.

    The cursor is the largest engine timestamp stored (nanoseconds since the epoch). The
    engine's `since` and `until` are inclusive and exact to the nanosecond (API 1.41,
    measured on docker.io 20.10); the next pass asks from a little before the cursor and
    drops the lines it already holds (`collector.Cursor`), so nothing is stored twice and
    nothing is skipped. The cursor moves in the same transaction as the lines it covers.
    `claimed_by`/`claimed_until` is the per-container lease of a pass.
    """

    host = models.ForeignKey(
        "hosts.Host", null=True, on_delete=models.SET_NULL, related_name="log_sources"
    )
    engine_id = models.CharField(max_length=64)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "tenants.Environment", on_delete=models.CASCADE, related_name="+"
    )
    stack_pk = models.PositiveBigIntegerField(default=0)  # no FK: the stack may go first
    stack = models.CharField(max_length=63, blank=True)
    service = models.CharField(max_length=63, blank=True)
    container = models.CharField(max_length=255, blank=True)
    tty = models.BooleanField(null=True)
    cursor_ns = models.BigIntegerField(default=0)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    collected_at = models.DateTimeField(null=True, blank=True)
    #: The stopped run whose log is stored to its end ("" while the container runs):
    #: passes skip the container until it runs again (`collector.ended_run`).
    ended = models.CharField(max_length=64, blank=True)
    #: The `until` of the last read that stored everything up to it (0: none yet): the
    #: collector's proof that a tail of the log reaches back far enough (`read_tail`).
    read_until_ns = models.BigIntegerField(default=0)
    gone_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "engine_id"], name="unique_log_source"),
        ]

    def __str__(self) -> str:
        return f"{self.container or self.engine_id[:12]}"


class LogLineQuerySet(TenantOwnedQuerySet):
    """Lines the caller may read: `visible_to` as every tenant-owned model, with the
    tenant ids read first; `search` in `apps/logs/search.py` adds the full-text condition.
    """

    def visible_to(self, user, min_role=Role.VIEWER, token=None):
        """The same rule, with the tenant ids as a list rather than a subquery: PostgreSQL
        then walks the (tenant, ts) index newest first and stops after a page, where the
        semi-join made it read and sort every line of the tenant (155 ms at 1M lines)."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if is_platform_admin(user, token, min_role):
            return self
        ids = [row["tenant_id"] for row in visible_tenant_ids(user, min_role, token)]
        return self.filter(tenant_id__in=ids)

    def search(self, text: str) -> LogLineQuerySet:
        from apps.logs.search import matching

        return matching(self, text)


class LogLine(models.Model):
    """One line a container wrote, as the engine timestamped it (microseconds kept)."""

    class Stream(models.TextChoices):
        STDOUT = "stdout", "stdout"
        STDERR = "stderr", "stderr"

    # One B-tree besides the key and the search index: every index is paid for by every
    # collected line. (tenant, ts) serves the searches, retention (tenant and environment,
    # ts) and the collector's overlap window (tenant and source, the last second).
    # No foreign key constraint on PostgreSQL: it checks one with a query per inserted
    # row (about 5 us each; the three took half of a COPY). What they guaranteed holds
    # otherwise. A line's source exists: the collector inserts a batch only in the
    # transaction that holds the source row locked (`collector.commit`), and deleting a
    # source that still has lines fails (a trigger, migration 0003, with a fresh
    # snapshot: it also sees lines committed while the delete waited for that lock).
    # Its tenant and environment are the source's, copied by the collector, and a
    # source cannot outlive them (its own constraints). Django still deletes a tenant's,
    # environment's or source's lines with it (on_delete). SQLite keeps the constraints.
    source = models.ForeignKey(
        LogSource,
        on_delete=models.CASCADE,
        related_name="lines",
        db_index=False,
        db_constraint=False,
    )
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    environment = models.ForeignKey(
        "tenants.Environment",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    stack = models.CharField(max_length=63, blank=True)
    service = models.CharField(max_length=63, blank=True)
    container = models.CharField(max_length=255, blank=True)
    stream = models.CharField(max_length=6, choices=Stream.choices, default=Stream.STDOUT)
    ts = models.DateTimeField()
    text = models.TextField()

    objects = LogLineQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "ts"], name="logs_line_tenant_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.container} {self.ts:%Y-%m-%d %H:%M:%S} {self.text[:60]}"


class LogRetention(models.Model):
    """How many days an environment keeps its lines, when not BERTH_LOG_RETENTION_DAYS.

    A row of its own rather than a field on Environment, so the log store adds no
    migration to the tenants app. Set through `services.set_retention` (the Retention
    page, the API) by the tenant's owners and admins; no row is the platform default.
    The admin site edits rows directly, without the maximum, the event or the checks.
    """

    environment = models.OneToOneField(
        "tenants.Environment", on_delete=models.CASCADE, related_name="log_retention"
    )
    days = models.PositiveIntegerField(help_text="Days lines are kept (0: the platform default)")

    def __str__(self) -> str:
        return f"{self.environment}: {self.days_kept} days"

    @property
    def days_kept(self) -> int:
        return self.days or settings.BERTH_LOG_RETENTION_DAYS
