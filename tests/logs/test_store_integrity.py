"""A stored line always has its source.

On PostgreSQL the line has no foreign key constraint on its source (a query per inserted
row): the collector inserts a batch in the transaction that holds the source row locked,
and a trigger refuses to delete a source that lines still name, including lines
committed while the delete waited for that lock. SQLite keeps the constraint.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from apps.logs import store
from apps.logs.models import LogLine, LogSource

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def source(tenant_a):
    env = tenant_a.environments.order_by("pk").first()
    return LogSource.objects.create(
        engine_id="c0ffee", tenant=tenant_a, environment=env, stack="shop", container="web-1"
    )


def store_line(source: LogSource, text: str) -> None:
    prefix = store.row_prefix(
        source.pk, source.tenant_id, source.environment_id, "shop", "web", "web-1", "stdout"
    )
    store.insert(prefix + b"2026-12-06T21:29:19.5Z\t" + text.encode() + b"\n")


def test_deleting_a_source_deletes_its_lines(source):
    with transaction.atomic():
        store_line(source, "hello")
    source.delete()
    assert not LogLine.objects.exists()


def test_a_source_cannot_go_while_lines_name_it(source):
    with transaction.atomic():
        store_line(source, "hello")
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute("DELETE FROM logs_logsource WHERE id = %s", [source.pk])
    assert LogLine.objects.filter(source=source).count() == 1


def test_a_delete_that_waited_for_a_batch_sees_its_lines(source):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: no delete waits for a batch")
    failed: list[Exception] = []

    def delete_source() -> None:  # as Django deletes it: its lines first, then the row
        try:
            LogSource.objects.filter(pk=source.pk).delete()
        except IntegrityError as exc:
            failed.append(exc)
        finally:
            connection.close()

    deleter = threading.Thread(target=delete_source)
    with transaction.atomic():
        LogSource.objects.select_for_update().get(pk=source.pk)  # as collector.commit
        store_line(source, "committed while the delete waited")
        deleter.start()
        time.sleep(0.5)  # the delete is now waiting for the source row's lock
    deleter.join(10)
    assert failed and LogSource.objects.filter(pk=source.pk).exists()
    assert LogLine.objects.filter(source=source).count() == 1
