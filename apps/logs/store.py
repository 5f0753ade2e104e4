"""Writing lines in bulk: the collector's one hot path.

A batch of lines travels as PostgreSQL COPY text (tab-separated COLUMNS, one row a line,
`\\`, tab, newline and CR escaped): the collector makes it from the engine's bytes a run
of lines at a time (`apps/logs/rows.py`), with no Python object per line, and
PostgreSQL takes it with one COPY write (psycopg 3). Dumping row tuples field by field
(`write_row`) cost the collector process about 2.5 us a line, and building the tuples
and their datetimes more than that again. SQLite, which has no COPY, reads the same
text back into tuples for one `executemany`. The database computes the search column
(PostgreSQL) or the triggers fill the FTS5 table (SQLite).
"""

from __future__ import annotations

import re
from datetime import datetime

from django.db import connection

from apps.logs.models import LogLine

COLUMNS = (
    "source_id",
    "tenant_id",
    "environment_id",
    "stack",
    "service",
    "container",
    "stream",
    "ts",
    "text",
)

# COPY text escapes (PostgreSQL, "COPY ... FORMAT text"): the backslash first.
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\r", b"\\r"))
_NEWLINE = (b"\n", b"\\n")
_UNESCAPE = re.compile(rb"\\(.)")
_UNESCAPED = {b"\\": b"\\", b"t": b"\t", b"r": b"\r", b"n": b"\n"}


def escape(value: bytes, *, lines: bool = False) -> bytes:
    """`value` as a COPY text field; with `lines`, every line of `value` as one (its
    newlines kept: they end the rows)."""
    for raw, escaped in _ESCAPES if lines else (*_ESCAPES, _NEWLINE):
        if raw in value:
            value = value.replace(raw, escaped)
    return value


def unescape(field: bytes) -> bytes:
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], field) if b"\\" in field else field


def row_prefix(*values: object) -> bytes:
    """The COPY text of a row's leading columns, each followed by a tab."""
    return b"".join(escape(str(value).encode()) + b"\t" for value in values)


def insert(rows: bytes) -> None:
    """Insert `rows` (COPY text in COLUMNS order, one line per row) in the caller's
    transaction (which must also move the source's cursor: see the synchronous_commit
    note)."""
    if not rows:
        return
    table = LogLine._meta.db_table
    names = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No wait for the WAL flush: lines and the cursor that covers them commit
            # together, so a database crash that loses this transaction loses both, and
            # the next pass fetches the lines again from the engine.
            cursor.execute("SET LOCAL synchronous_commit = off")
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                copy.write(rows)
        else:
            marks = ", ".join(["%s"] * len(COLUMNS))
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
            cursor.executemany(sql, list(_tuples(rows)))


def _tuples(rows: bytes):
    """COPY text back into row tuples (SQLite): ids as ints, the time as the ORM stores
    it, text as str."""
    adapt = connection.ops.adapt_datetimefield_value
    for line in rows.split(b"\n")[:-1]:
        fields = [unescape(field).decode() for field in line.split(b"\t")]
        ids = [int(value) for value in fields[:3]]
        yield (*ids, *fields[3:7], adapt(datetime.fromisoformat(fields[7])), fields[8])
