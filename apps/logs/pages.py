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
from django.db.models import Q, QuerySet

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


def decode_cursor(raw: str) -> Q:
    """The condition "older than the cursor's line"; ValidationError on `cursor`."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        micros, pk = (int(part) for part in text.split(":"))
        ts = EPOCH + timedelta(microseconds=micros)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationError({"cursor": ["Not a cursor this API gave out."]}) from None
    return Q(ts__lt=ts) | Q(ts=ts, pk__lt=pk)


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


def newest_first(lines: QuerySet, cursor: str | None, limit: int) -> Page:
    """One page of `lines`, newest first, older than `cursor`; its next cursor."""
    if cursor:
        lines = lines.filter(decode_cursor(cursor))
    rows = list(lines.order_by("-ts", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def tail(lines: QuerySet, limit: int) -> Page:
    """Lines in the order they were stored (the `after` filter already applied): what a
    live tail appends."""
    return Page(list(lines.order_by("pk")[:limit]), None)
