"""Operations on the log store besides collecting: retention, and reading lines out.

Collecting lives in `collector.py`; searching is `LogLine.objects.visible_to(...)`
narrowed by `filters.LogFilterSet`, the same for the page and the API.

Retention: every environment keeps its lines BERTH_LOG_RETENTION_DAYS unless it has a
`LogRetention` of its own, which tenant owners and admins set (`set_retention`, behind
the Retention page and `/api/v1/logs/retention/`) from 1 to BERTH_LOG_RETENTION_MAX_DAYS.
Platform admins may go past that maximum, up to ADMIN_MAX_DAYS: the maximum protects
the platform's disk from tenants, and the operator owns the disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.activity.services import record_event
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.logs.models import LogLine, LogRetention, LogSource
from apps.tenants.models import Environment

EXPORT_FORMATS = ("text", "jsonl")
# A century: the most a platform admin may set (and what prune reads of a larger value
# set in the admin site), far inside the date arithmetic's range.
ADMIN_MAX_DAYS = 36500


# --- retention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """An environment's retention as the page and the API show it. `days` 0 is the
    platform default; `days_kept` is what prune applies (0: kept for ever)."""

    environment: Environment
    days: int

    @property
    def is_default(self) -> bool:
        return self.days == 0

    @property
    def days_kept(self) -> int:
        return self.days or settings.BERTH_LOG_RETENTION_DAYS


def with_retention(environments: QuerySet) -> QuerySet:
    """The environments, each with `log_days` (its own retention, 0 for the default)."""
    return environments.annotate(log_days=Coalesce("log_retention__days", 0))


def retentions(environments: Iterable[Environment]) -> list[Retention]:
    """`Retention`s of environments read through `with_retention`."""
    return [Retention(env, env.log_days) for env in environments]


def days_message(actor: Any = None) -> str:
    """The one message of a refused value (the form, the page and the API show it)."""
    top = max_days(actor)
    return f"Give a whole number of days: 0 (the platform default) or 1 to {top}."


def max_days(actor: Any = None) -> int:
    if actor is not None and actor.is_active and actor.is_superuser:
        return max(ADMIN_MAX_DAYS, settings.BERTH_LOG_RETENTION_MAX_DAYS)
    return settings.BERTH_LOG_RETENTION_MAX_DAYS


def check_days(actor: Any, days: Any) -> int:
    """`days` as a number of days the actor may set, or a ValidationError on `days`."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= max_days(actor):
        raise ValidationError({"days": [days_message(actor)]})
    return days


@transaction.atomic
def set_retention(actor: Any, environment: Environment, days: Any) -> Retention:
    """Set how many days the environment keeps its lines (0: the platform default);
    owners and admins of its tenant, and platform admins (who may exceed the maximum).

    An unchanged value records nothing, and is accepted even past the maximum (a value a
    platform admin set stays until someone changes it). The environment's row is locked
    first, so two changes at once are recorded in order, each with the value it replaced.
    """
    tenant = environment.tenant
    require_role(actor, tenant, Role.ADMIN)
    Environment.objects.select_for_update().filter(pk=environment.pk).first()
    current = LogRetention.objects.filter(environment=environment).first()
    old = current.days if current is not None else 0
    if type(days) is int and days == old:
        return Retention(environment, days)
    days = check_days(actor, days)
    if days == 0:
        LogRetention.objects.filter(environment=environment).delete()
    else:
        LogRetention.objects.update_or_create(environment=environment, defaults={"days": days})
    new = Retention(environment, days)
    record_event(
        "logs.retention",
        actor=actor,
        tenant=tenant,
        obj=environment,
        message=f"Log retention of {environment.slug}: {describe(old)} → {describe(days)}",
        data={"environment": environment.slug, "old": old, "new": days, "kept": new.days_kept},
    )
    return new


def describe(days: int) -> str:
    """`days` as a person reads it: its own number, or the default and what it means."""
    return f"{days} days" if days else f"platform default ({describe_default()})"


def describe_default() -> str:
    default = settings.BERTH_LOG_RETENTION_DAYS
    return f"{default} days" if default else "kept until deleted by hand"


def retention_days() -> dict[int, int]:
    """Days kept per environment id, for the environments that say otherwise (a value
    past ADMIN_MAX_DAYS, possible in the admin site, counts as ADMIN_MAX_DAYS)."""
    return {
        env_id: min(days or settings.BERTH_LOG_RETENTION_DAYS, ADMIN_MAX_DAYS)
        for env_id, days in LogRetention.objects.values_list("environment_id", "days")
    }


def prune_lines(batch_size: int = 5000, max_batches: int | None = None) -> int:
    """Delete lines older than their environment's retention, in batches.

    Each batch is one short transaction (ids first, then a delete by id), so a million
    expired lines never hold a long lock while the collector writes. Sources of removed
    containers whose lines are all gone are deleted too. Returns how many lines went.
    """
    overrides = retention_days()
    now = timezone.now()
    removed, batches = 0, 0
    for env_id, tenant_id in Environment.objects.values_list("pk", "tenant_id"):
        days = overrides.get(env_id, settings.BERTH_LOG_RETENTION_DAYS)
        if days <= 0:
            continue
        old = LogLine.objects.filter(  # the tenant leads the (tenant, ts) index
            tenant_id=tenant_id, environment_id=env_id, ts__lt=now - timedelta(days=days)
        )
        while max_batches is None or batches < max_batches:
            ids = list(old.order_by("ts").values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            removed += LogLine.objects.filter(pk__in=ids).delete()[0]
            batches += 1
    LogSource.objects.filter(gone_at__isnull=False, lines__isnull=True).delete()
    return removed


def export_lines(lines: QuerySet, kind: str) -> Iterator[str]:
    """The lines, oldest first, as text (`ts container stream text`) or JSON lines.

    Read in chunks from a server-side cursor, so a download of millions of lines never
    sits in memory whole.
    """
    rows = lines.order_by("ts", "pk").values_list(
        "pk", "ts", "stack", "service", "container", "stream", "text"
    )
    for pk, ts, stack, service, container, stream, text in rows.iterator(chunk_size=2000):
        when = ts.isoformat().replace("+00:00", "Z")
        if kind == "jsonl":
            record = {
                "id": pk,
                "ts": when,
                "stack": stack,
                "service": service,
                "container": container,
                "stream": stream,
                "text": text,
            }
            yield json.dumps(record) + "\n"
        else:
            yield f"{when} {container} {stream} {text}\n"


def export_chunks(lines: QuerySet, kind: str, size: int = 1000) -> Iterator[str]:
    """`export_lines` joined `size` lines at a time: one write (and, under ASGI, one hop
    to the database thread) per chunk rather than per line."""
    chunk: list[str] = []
    for text in export_lines(lines, kind):
        chunk.append(text)
        if len(chunk) >= size:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)
