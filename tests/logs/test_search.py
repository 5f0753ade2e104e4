"""Searching, paging, tailing and downloading stored lines; tenancy; retention.

Database only (no engine): rows are written as the collector writes them. Runs on
PostgreSQL (tsvector) and on SQLite (FTS5) alike: run this module once without
DATABASE_URL to check the embedded default.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient, Client
from django.utils import timezone

from apps.logs import services
from apps.logs.models import LogLine, LogRetention, LogSource
from apps.tenants.middleware import SESSION_TENANT
from tests.conftest import login

pytestmark = pytest.mark.django_db

API = "/api/v1/logs/"


def add_lines(environment, texts, *, stack="shop", service="web", stream="stdout", start=None):
    """Lines of one container, one second apart from `start` (default: an hour ago)."""
    source, _ = LogSource.objects.get_or_create(
        engine_id=f"{environment.pk}-{stack}-{service}",
        defaults=dict(
            tenant=environment.tenant,
            environment=environment,
            stack=stack,
            service=service,
            container=f"{stack}-{service}-1",
        ),
    )
    start = start or timezone.now() - timedelta(hours=1)
    rows = [
        LogLine(
            source=source,
            tenant=environment.tenant,
            environment=environment,
            stack=stack,
            service=service,
            container=source.container,
            stream=stream,
            ts=start + timedelta(seconds=i),
            text=text,
        )
        for i, text in enumerate(texts)
    ]
    return LogLine.objects.bulk_create(rows)


@pytest.fixture
def env_a(tenant_a):
    return tenant_a.environments.order_by("pk").first()


@pytest.fixture
def env_b(tenant_b):
    return tenant_b.environments.order_by("pk").first()


@pytest.fixture
def lines(env_a, env_b):
    add_lines(env_a, ["payment accepted order=1", "payment FAILED order=2", "healthy"])
    add_lines(env_a, ["db: connection refused"], stack="shop", service="db", stream="stderr")
    add_lines(env_b, ["payment accepted order=99 globex-only"])


def texts(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [line["text"] for line in response.json()["results"]]


def test_search_finds_every_word_case_folded(owner_client, lines):
    assert texts(owner_client.get(API, {"q": "payment failed"})) == ["payment FAILED order=2"]
    assert sorted(texts(owner_client.get(API, {"q": "PAYMENT"}))) == [
        "payment FAILED order=2",
        "payment accepted order=1",
    ]
    assert texts(owner_client.get(API, {"q": "nothing-like-this"})) == []


def test_one_tenants_search_never_returns_anothers_lines(
    owner_client, outsider_client, lines, owner
):
    mine = texts(owner_client.get(API, {"q": "payment"}))
    assert mine and not any("globex" in text for text in mine)
    theirs = texts(outsider_client.get(API, {"q": "payment"}))
    assert theirs == ["payment accepted order=99 globex-only"]
    # Naming the other tenant finds nothing rather than its lines.
    assert texts(outsider_client.get(API, {"tenant": "acme"})) == []
    download = outsider_client.get(API + "download/")
    assert b"order=1" not in b"".join(download.streaming_content)


def test_filters_narrow_by_names_stream_and_time(owner_client, lines):
    assert texts(owner_client.get(API, {"service": "db"})) == ["db: connection refused"]
    assert texts(owner_client.get(API, {"stream": "stderr"})) == ["db: connection refused"]
    assert texts(owner_client.get(API, {"stack": "other"})) == []
    later = (timezone.now() + timedelta(minutes=5)).isoformat()
    assert texts(owner_client.get(API, {"since": later})) == []
    assert len(texts(owner_client.get(API, {"until": later}))) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stream": "stdin"}, "stream"),
        ({"since": "yesterday-ish"}, "since"),
        ({"since": "2026-02-02", "until": "2026-02-01"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"after": "-3"}, "after"),
        ({"q": "x" * 201}, "q"),
        ({"severity": "high"}, "severity"),
    ],
)
def test_bad_parameters_answer_400_naming_the_field(owner_client, lines, params, field):
    response = owner_client.get(API, params)
    assert response.status_code == 400
    assert field in response.json()


def test_download_rejects_an_unknown_output(owner_client, lines):
    response = owner_client.get(API + "download/", {"output": "xml"})
    assert response.status_code == 400 and "output" in response.json()


def test_cursor_pages_walk_every_line_once_newest_first(owner_client, env_a):
    add_lines(env_a, [f"n {i}" for i in range(25)])
    seen, url = [], API + "?limit=10"
    while url:
        body = owner_client.get(url).json()
        seen += [line["text"] for line in body["results"]]
        url = body["next"]
    assert seen == [f"n {i}" for i in reversed(range(25))]


def test_tail_returns_what_was_stored_after_an_id(owner_client, env_a):
    first = add_lines(env_a, ["old"])
    add_lines(env_a, ["new 1", "new 2"], start=timezone.now() - timedelta(days=2))
    assert texts(owner_client.get(API, {"after": first[-1].pk})) == ["new 1", "new 2"]


def test_download_streams_text_and_json_lines_oldest_first(owner_client, lines):
    response = owner_client.get(API + "download/", {"q": "payment"})
    assert response.streaming and response["Content-Type"].startswith("text/plain")
    body = b"".join(response.streaming_content).decode().splitlines()
    assert [line.split(" ", 3)[3] for line in body] == [
        "payment accepted order=1",
        "payment FAILED order=2",
    ]
    response = owner_client.get(API + "download/", {"output": "jsonl", "service": "db"})
    records = [json.loads(r) for r in b"".join(response.streaming_content).splitlines()]
    assert [(r["stream"], r["text"]) for r in records] == [("stderr", "db: connection refused")]


def page_client(user, tenant) -> Client:
    client = login(Client(), user)
    session = client.session
    session[SESSION_TENANT] = tenant.pk
    session.save()
    return client


def test_logs_page_searches_follows_and_downloads(owner, tenant_a, lines):
    client = page_client(owner, tenant_a)
    page = client.get("/logs/", {"q": "payment", "follow": "1"}).content.decode()
    assert "payment FAILED order=2" in page and "globex" not in page and 'id="log-tail"' in page
    partial = client.get("/logs/", {"q": "refused"}, HTTP_HX_REQUEST="true").content.decode()
    assert "connection refused" in partial and "<html" not in partial
    newest = LogLine.objects.filter(tenant=tenant_a).order_by("-pk").first()
    add_lines(tenant_a.environments.first(), ["payment retried order=2"], service="api")
    tail = client.get("/logs/tail/", {"q": "payment", "after": newest.pk}).content.decode()
    assert "payment retried" in tail and "hx-swap-oob" in tail
    download = client.get("/logs/download/", {"q": "payment", "output": "jsonl"})
    assert b"payment retried" in b"".join(download.streaming_content)
    assert client.get("/logs/", {"stream": "stdin"}).status_code == 200  # shown by the field
    assert client.get("/logs/download/", {"stream": "stdin"}).status_code == 400


def test_retention_deletes_old_lines_per_environment(env_a, env_b, settings):
    settings.BERTH_LOG_RETENTION_DAYS = 7
    now = timezone.now()
    add_lines(env_a, ["a old"], start=now - timedelta(days=8))
    add_lines(env_a, ["a kept"], start=now - timedelta(days=6), service="api")
    add_lines(env_b, ["b 3 days old"], start=now - timedelta(days=3))
    LogRetention.objects.create(environment=env_b, days=2)
    gone = LogSource.objects.get(tenant=env_a.tenant, service="web")
    LogSource.objects.filter(pk=gone.pk).update(gone_at=now)

    assert services.prune_lines(batch_size=1) == 2
    assert list(LogLine.objects.values_list("text", flat=True)) == ["a kept"]
    assert not LogSource.objects.filter(pk=gone.pk).exists()  # removed, and no line left


def test_download_under_asgi_streams_from_an_async_iterator(owner, env_a, settings):
    """Under daphne a plain iterator would be read whole into memory before the first
    byte; the ASGI request gets chunks from an async iterator instead."""
    add_lines(env_a, [f"bulk {i}" for i in range(2500)])

    async def download() -> tuple[bool, list[str]]:
        client = AsyncClient()
        await sync_to_async(client.force_login)(
            owner, backend="django.contrib.auth.backends.ModelBackend"
        )
        response = await client.get(API + "download/", {"q": "bulk"})
        chunks = [chunk async for chunk in response.streaming_content]
        return response.is_async, b"".join(chunks).decode().splitlines()

    is_async, body = async_to_sync(download)()
    assert is_async
    assert [line.split(" ", 3)[3] for line in body] == [f"bulk {i}" for i in range(2500)]


def test_beat_collects_and_prunes_with_registered_tasks(settings, env_a):
    from paas.celery import app

    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"logs.collect_all", "logs.prune"} <= schedule
    app.loader.import_default_modules()
    assert {"logs.collect_all", "logs.collect_host", "logs.prune"} <= set(app.tasks)
    assert app.tasks["logs.prune"]() == 0  # nothing old yet
