"""The registry's notification webhook: authenticated by the shared secret, replay-proof,
and counting exactly the pulls made.

Two sources of events: envelopes captured from a real docker-registry 2.8 run (a push and
two pulls: tests/registry/data/), replayed against the webhook with fresh timestamps; and
the live registry of tests/registry/conftest.py notifying the live server while the real
docker client pulls.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from apps.activity.models import Event
from apps.registry import config, usage
from apps.registry.models import RegistryEvent, Repository, TenantRegistryQuota
from tests.conftest import PASSWORD

URL = "/registry/notifications/"
CAPTURED = json.loads((Path(__file__).parent / "data" / "push_pull_envelopes.json").read_text())


def envelopes(shift_to=None) -> list[dict]:
    """The captured envelopes, with fresh ids per run and timestamps moved to now."""
    now = shift_to or timezone.now()
    result = copy.deepcopy(CAPTURED["envelopes"])
    run = uuid.uuid4().hex[:8]
    for index, envelope in enumerate(result):
        for event in envelope["events"]:
            event["id"] = f"{event['id']}-{run}"
            moment = now - timedelta(seconds=len(result) - index)
            event["timestamp"] = moment.isoformat().replace("+00:00", "Z")
    return result


def post(envelope, secret: str | None = None):
    secret = config.notification_secret() if secret is None else secret
    return Client().post(
        URL,
        json.dumps(envelope),
        content_type="application/vnd.docker.distribution.events.v1+json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


@pytest.mark.django_db
def test_captured_push_and_two_pulls_are_counted_once_each(tenant_a):
    answers = [post(envelope) for envelope in envelopes()]
    assert all(a.status_code == 200 for a in answers), [a.content for a in answers]
    repository = Repository.objects.get(tenant=tenant_a, name="web")
    assert (repository.push_count, repository.pull_count) == (1, 2)
    today = usage.daily(tenant_a, days=1)[0]
    assert (today["pulls"], today["pushes"]) == (2, 1)
    stored = RegistryEvent.objects.filter(tenant=tenant_a)
    # Layer HEAD checks are ignored; pushed layers, the manifest push and 3 manifest pulls stay.
    assert stored.count() == 5 + 1 + 3
    push = stored.get(action="push", tag="1.0")
    assert push.digest.startswith("sha256:") and push.size == 1152
    pushed = stored.filter(action="push").aggregate(total=Sum("transferred"))["total"]
    assert pushed == 4060 + 3395 + 2645 + 1064345 + 5270 + 1152
    ignored = [json.loads(a.content)["ignored"] for a in answers]
    assert sum(len(i) for i in ignored) == 8


@pytest.mark.django_db
def test_forged_notifications_are_refused(tenant_a):
    envelope = envelopes()[10]
    for header in ("Bearer wrong", "", f"Basic {config.notification_secret()}"):
        response = Client().post(
            URL, json.dumps(envelope), content_type="application/json", HTTP_AUTHORIZATION=header
        )
        assert response.status_code == 401
    assert (
        Client().post(URL, json.dumps(envelope), content_type="application/json").status_code == 401
    )
    assert not RegistryEvent.objects.exists()
    assert not Repository.objects.exists()


@pytest.mark.django_db
def test_replayed_notification_is_refused_and_not_counted(tenant_a):
    batch = envelopes()
    for envelope in batch:
        post(envelope)
    again = post(batch[11])  # the first pull, sent again
    assert again.status_code == 200
    body = again.json()
    assert body["accepted"] == []
    assert "replayed" in body["refused"][0]["reason"]
    assert Repository.objects.get(tenant=tenant_a, name="web").pull_count == 2
    assert Event.objects.filter(action="registry.notification.refused").exists()


@pytest.mark.django_db
def test_old_or_future_notification_is_refused(tenant_a):
    for moment in (timezone.now() - timedelta(days=2), timezone.now() + timedelta(days=2)):
        envelope = envelopes(shift_to=moment)[11]
        body = post(envelope).json()
        assert body["accepted"] == [] and "window" in body["refused"][0]["reason"]
    assert not RegistryEvent.objects.exists()


@pytest.mark.django_db
def test_events_outside_any_tenant_and_garbage_are_not_500(tenant_a):
    envelope = envelopes()[11]
    envelope["events"][0]["target"]["repository"] = "nobody/web"
    assert "namespace" in post(envelope).json()["refused"][0]["reason"]
    for body in ({}, {"events": "x"}, [], {"events": [1, None, {"id": "x"}]}):
        assert post(body).status_code in (200, 400)
    assert (
        Client()
        .post(
            URL,
            b"not json",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {config.notification_secret()}",
        )
        .status_code
        == 400
    )
    assert not RegistryEvent.objects.exists()


@pytest.mark.django_db
def test_berths_own_reads_are_not_pulls(tenant_a):
    envelope = envelopes()[11]
    envelope["events"][0]["actor"] = {"name": "berth-admin"}
    body = post(envelope).json()
    assert body["accepted"] == [] and "own read" in body["ignored"][0]["reason"]
    assert not RegistryEvent.objects.exists()


@pytest.mark.django_db
def test_pull_alert_fires_once_when_the_threshold_is_passed(tenant_a):
    TenantRegistryQuota.objects.create(tenant=tenant_a, pull_alert_threshold=1)
    for envelope in envelopes():
        post(envelope)
    for envelope in envelopes()[11:14]:  # two more counted pulls
        post(envelope)
    alerts = Event.objects.filter(action="registry.pull_alert", tenant=tenant_a)
    assert alerts.count() == 1
    assert "above the alert threshold of 1" in alerts.get().message


# --- the live registry and the real docker client ---------------------------------------------


@pytest.fixture
def eager_tasks(settings, registry):
    """Tasks queued by the webhook run at once against the test registry."""
    from paas.celery import app

    settings.BERTH_REGISTRY_ADDR = registry.addr
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_usage_numbers_equal_the_pulls_made(
    registry, eager_tasks, docker_cli, tiny_image, tenant_a, member
):
    name = f"pulls-{uuid.uuid4().hex[:6]}"
    assert docker_cli.login(registry, member.username, PASSWORD).returncode == 0
    ref = docker_cli.tag(tiny_image, registry.ref(f"acme/{name}", "v1"))
    assert docker_cli.push(ref).returncode == 0
    docker_cli.forget(ref)
    pulls = 3
    for _ in range(pulls):
        result = docker_cli.pull(ref)
        assert result.returncode == 0, result.stderr

    def counted():
        repo = Repository.objects.filter(tenant=tenant_a, name=name).first()
        return repo if repo and repo.pull_count >= pulls and repo.push_count >= 1 else None

    repository = wait_for(counted)
    assert repository is not None, list(RegistryEvent.objects.values("action", "tag", "media_type"))
    time.sleep(1.5)  # late or duplicate deliveries would show up now
    repository.refresh_from_db()
    assert (repository.pull_count, repository.push_count) == (pulls, 1)
    today = [d for d in usage.daily(tenant_a, 1, repository)][0]
    assert (today["pulls"], today["pushes"]) == (pulls, 1)
    push = RegistryEvent.objects.get(repository=repository, action="push", counted=True)
    assert push.actor == member.username and push.tag == "v1"
    # The push refreshed the storage figures from the registry's manifests.
    assert wait_for(lambda: Repository.objects.get(pk=repository.pk).size_bytes > 500_000)


@pytest.mark.django_db
def test_a_blob_mounted_from_another_repository_counts_in_storage(tenant_a):
    """The docker client mounts a layer the registry already holds instead of uploading
    it: the tenant's repository now holds it, so its storage counts it, once."""
    digest = "sha256:" + "c" * 64
    event = {
        "id": f"mount-{uuid.uuid4().hex[:8]}",
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "action": "mount",
        "target": {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 1_048_576,
            "digest": digest,
            "repository": "acme/web",
            "fromRepository": "acme/other",
        },
        "request": {"method": "POST", "addr": "127.0.0.1:4000"},
        "actor": {"name": "olivia"},
    }
    for _ in range(2):
        assert post({"events": [event]}).status_code == 200
        event = {**event, "id": event["id"] + "x"}
    quota = TenantRegistryQuota.objects.get(tenant=tenant_a)
    assert quota.used_bytes == 1_048_576 and digest in quota.blob_sizes
    assert not RegistryEvent.objects.filter(tenant=tenant_a).exists()
