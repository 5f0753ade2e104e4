"""Writing lines in bulk: the collector's one hot path.

Django's `bulk_create` builds a model instance and compiles every value of every row:
about two thirds of a pass's time went there. Rows arrive here as plain tuples in
COLUMNS order; PostgreSQL takes them through COPY (psycopg 3), SQLite through one
`executemany`. The database computes the search column (PostgreSQL) or the triggers
fill the FTS5 table (SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def insert(rows: Sequence[tuple]) -> None:
    """Insert `rows` (tuples in COLUMNS order) in the caller's transaction (which must
    also move the source's cursor: see the synchronous_commit note)."""
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
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(COLUMNS))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
