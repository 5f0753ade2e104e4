"""Operations on the log store besides collecting: retention, and reading lines out.

Collecting lives in `collector.py`; searching is `LogLine.objects.visible_to(...)`
narrowed by `filters.LogFilterSet`, the same for the page and the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.logs.models import LogLine, LogRetention, LogSource
from apps.tenants.models import Environment

EXPORT_FORMATS = ("text", "jsonl")


def retention_days() -> dict[int, int]:
    """Days kept per environment id, for the environments that say otherwise."""
    return {
        env_id: days or settings.BERTH_LOG_RETENTION_DAYS
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
