"""Full-text search over log lines, on whichever database Berth runs.

PostgreSQL: a generated `tsvector` column (`to_tsvector('simple', text)`, GIN index),
matched with `plainto_tsquery`: every word of the query must occur, in any order, case
folded, no stemming ('simple': logs are not prose, and "failed" must not find "fail").
SQLite: an FTS5 table over the same text (unicode61 tokenizer), every word quoted, so
the user's input is never FTS5 syntax. The same words find the same lines on both.
A trigram index (pg_trgm) would also find parts of words, but needs an extension the
operator must allow and was not measured here; see README, Logs.
"""

from __future__ import annotations

import re

from django.db import connections, models
from django.db.models.expressions import RawSQL

# Tables and columns made by migration 0001 (not declared on the model).
FTS_TABLE = "logs_logline_fts"
WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY = 200


def words(text: str) -> list[str]:
    """The query's words as SQLite's FTS5 splits them (letters, digits)."""
    return WORD.findall(text)


def matching(queryset: models.QuerySet, text: str) -> models.QuerySet:
    """`queryset` narrowed to lines holding every word of `text`; no word, no narrowing."""
    found = words(text)
    if not found:
        return queryset
    # Only our own table's name is written into the SQL; the user's text is a parameter.
    table = queryset.model._meta.db_table
    if connections[queryset.db].vendor == "postgresql":
        sql = f"{table}.search @@ plainto_tsquery('simple', %s)"
        param = text  # the document's own parser splits it: e-mails, paths, versions
    else:
        sql = f"{table}.id IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)"  # noqa: S608
        param = " ".join(f'"{word}"' for word in found)  # \w+ holds no quote
    condition = RawSQL(sql, (param,), output_field=models.BooleanField())  # noqa: S611
    return queryset.alias(**{MATCH: condition}).filter(**{MATCH: True})


MATCH = "_match"


def is_search(queryset: models.QuerySet) -> bool:
    """Whether `matching` narrowed this queryset (pages order such results differently)."""
    return MATCH in queryset.query.annotations
