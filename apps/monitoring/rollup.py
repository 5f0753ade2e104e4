"""Downsampling and retention (`run`, by beat every BERTH_METRICS_ROLLUP_SECONDS).

For each sample table and each coarser tier, the complete buckets after the tier's mark
are aggregated from the tier before it (`tiers.aggregate`) and upserted, then the mark
moves on; afterwards every tier's expired rows are deleted in batches, and series with
no sample left are forgotten. Running it twice, at once or after a crash writes the
same rows: a bucket is recomputed from the same finer rows and overwrites itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from django.db import transaction
from django.utils import timezone

from apps.monitoring import tiers
from apps.monitoring.models import SAMPLE_MODELS, RollupMark, Sample, Series

log = logging.getLogger(__name__)

#: Buckets of one tier aggregated per run at most (a long outage catches up over runs).
MAX_BUCKETS = 360
DELETE_BATCH = 5000


@dataclass
class RollupResult:
    written: int = 0
    deleted: int = 0
    series_deleted: int = 0


def run(now: datetime | None = None) -> RollupResult:
    """Aggregate every tier, then apply every retention."""
    now = now or timezone.now()
    levels = tiers.configured()
    result = RollupResult()
    for model in SAMPLE_MODELS.values():
        for source, target in zip(levels, levels[1:], strict=False):
            result.written += roll_up(model, source, target, now)
        for tier in levels:
            result.deleted += expire(model, tier, now)
    result.series_deleted = forget_series(now, levels[-1])
    return result


def roll_up(model: type[Sample], source: tiers.Tier, target: tiers.Tier, now: datetime) -> int:
    """Write `target`'s complete buckets after its mark from `source`'s rows."""
    table = model._meta.db_table
    until = tiers.complete_until(now, target, source)
    mark = RollupMark.objects.filter(table=table, tier=target.index).first()
    start = mark.done_until if mark else _first(model, source, until, target)
    if start is None or start >= until:
        return 0
    until = min(until, start + timedelta(seconds=target.step * MAX_BUCKETS))
    rows = (
        model.objects.filter(tier=source.index, at__gte=start, at__lt=until)
        .order_by("series_id", "at")
        .values("series_id", "at", "samples", *model.AGGREGATES)
    )
    made = [
        model(series_id=sid, tier=target.index, at=bucket, **_typed(model, figures))
        for (sid, bucket), figures in _buckets(rows, target.step, model.AGGREGATES)
    ]
    with transaction.atomic():
        if made:
            model.objects.bulk_create(
                made,
                update_conflicts=True,
                unique_fields=["series", "tier", "at"],
                update_fields=["samples", *model.AGGREGATES],
                batch_size=1000,
            )
        RollupMark.objects.update_or_create(
            table=table, tier=target.index, defaults={"done_until": until}
        )
    return len(made)


def _first(
    model: type[Sample], source: tiers.Tier, until: datetime, target: tiers.Tier
) -> datetime | None:
    """Where a tier with no mark starts: the bucket of the oldest source row."""
    first = (
        model.objects.filter(tier=source.index, at__lt=until)
        .order_by("at")
        .values_list("at", flat=True)
        .first()
    )
    return tiers.bucket_start(first, target.step) if first else None


def _buckets(rows, step: int, spec: dict[str, str]):
    """((series id, bucket start), aggregate) for rows ordered by series and time."""
    for sid, of_series in groupby(rows, key=lambda r: r["series_id"]):
        for bucket, in_bucket in groupby(
            of_series, key=lambda r: tiers.bucket_start(r["at"], step)
        ):
            yield (sid, bucket), tiers.aggregate(list(in_bucket), spec)


def _typed(model: type[Sample], figures: dict) -> dict:
    """Averages of integer columns rounded; a missing `last` of a non-null column is 0."""
    out = {}
    for name, value in figures.items():
        column = model._meta.get_field(name)
        if value is None and not column.null:
            value = 0
        if value is not None and column.get_internal_type().endswith("IntegerField"):
            value = round(value)
        out[name] = value
    return out


def expire(model: type[Sample], tier: tiers.Tier, now: datetime) -> int:
    """Delete `tier`'s rows older than its retention, in batches."""
    cutoff = now - timedelta(seconds=tier.retention)
    deleted = 0
    while True:
        ids = list(
            model.objects.filter(tier=tier.index, at__lt=cutoff).values_list("pk", flat=True)[
                :DELETE_BATCH
            ]
        )
        if not ids:
            return deleted
        deleted += model.objects.filter(pk__in=ids).delete()[0]


def forget_series(now: datetime, coarsest: tiers.Tier) -> int:
    """Series unseen for longer than the longest retention have no sample left."""
    cutoff = now - timedelta(seconds=coarsest.retention)
    return Series.objects.filter(last_seen_at__lt=cutoff).delete()[0]
