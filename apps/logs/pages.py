"""Keyset pages of log lines, newest first: the API's `cursor` and the page's "Older".

Offsets would make page 1,000 of a million lines read 100,000 rows first; a cursor
("older than this line") reads one index range. The cursor is the last line's time (in
microseconds) and id, base64-encoded; a mangled one is a 400 naming `cursor`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet, Value
from django.utils import timezone

from apps.logs.search import is_search

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Page:
    lines: list
    next_cursor: str | None


def encode_cursor(line) -> str:
    micros = (line.ts - EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{line.pk}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[Q, datetime]:
    """The condition "older than the cursor's line", and its time; ValidationError on
    `cursor`."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        micros, pk = (int(part) for part in text.split(":"))
        ts = EPOCH + timedelta(microseconds=micros)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationError({"cursor": ["Not a cursor this API gave out."]}) from None
    return Q(ts__lt=ts) | Q(ts=ts, pk__lt=pk), ts


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": ["Give a whole number."]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Give a number from 1 to {MAX_LIMIT}."]})
    return limit


# Windows a page looks back through, from the cursor's time (or now), before all time.
WINDOWS = (timedelta(hours=1), timedelta(hours=12), timedelta(days=7))


def newest_first(lines: QuerySet, cursor: str | None, limit: int) -> Page:
    """One page of `lines`, newest first, older than `cursor`; its next cursor.

    Looked for in growing windows back in time (WINDOWS, then everything): the newest
    matches of a common word are found among the last hour's lines instead of sorting
    every match of a million (p95 at 1M lines: see README, Performance), and the
    ordering of `newest` stays cheap.
    """
    top = timezone.now()
    if cursor:
        condition, top = decode_cursor(cursor)
        lines = lines.filter(condition)
    ordered = lines.order_by(newest(lines), "-pk")
    rows: list = []
    for window in WINDOWS:
        rows = list(ordered.filter(ts__gte=top - window)[: limit + 1])
        if len(rows) > limit:
            break
    else:
        rows = list(ordered[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def newest(lines: QuerySet):
    """Newest first. For a word search, by an expression the (tenant, ts) index cannot
    give: PostgreSQL must then take the matches from the full-text index and sort them
    (a window's worth). Ordered by the index, it walked a tenant's lines newest first
    checking each one, and a word that never occurs cost every line (0.96 s at 1M)."""
    if is_search(lines):
        return ExpressionWrapper(F("ts") + Value(timedelta(0)), DateTimeField()).desc()
    return F("ts").desc()


def tail(lines: QuerySet, limit: int) -> Page:
    """Lines in the order they were stored (the `after` filter already applied): what a
    live tail appends."""
    return Page(list(lines.order_by("pk")[:limit]), None)
