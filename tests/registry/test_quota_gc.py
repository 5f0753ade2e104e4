"""Storage quota (a push that would pass it is refused at the manifest by the registry's
gate, and a tenant already over it gets no push token, each with a message the docker
client prints) and garbage collection that frees real disk after tags are deleted, on a
real registry."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from apps.activity.models import Event
from apps.registry import gc, quota, services
from apps.registry.client import RegistryClient
from apps.registry.models import Repository, TenantRegistryQuota
from tests.conftest import PASSWORD
from tests.registry.conftest import start_registry, starttime, stop_registry


@pytest.fixture
def eager_tasks(settings):
    from paas.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.mark.django_db
def test_can_push_until_the_quota_is_reached(tenant_a):
    assert quota.can_push(tenant_a) == (True, "")
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=1000, used_bytes=999)
    assert quota.can_push(tenant_a)[0]
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(used_bytes=1000)
    ok, message = quota.can_push(tenant_a)
    assert not ok
    assert "storage quota of acme exceeded" in message and "1000" in message.replace("\xa0", " ")


def eventually(check, timeout: float = 15.0) -> bool:
    """The registry's notifications arrive a moment after the request they report."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def refused(result, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    output = (result.stdout + result.stderr).replace("\xa0", " ")
    for needle in needles:
        assert needle in output, output


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_a_push_bigger_than_the_quota_is_refused_before_it_is_stored(
    registry, eager_tasks, docker_cli, tiny_image, tenant_a, member
):
    """Nothing used yet, a 100 KB quota, a 1 MB image: refused, and no tag exists."""
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=100 * 1024)
    assert docker_cli.login(registry, member.username, PASSWORD).returncode == 0
    name = f"acme/quota-{uuid.uuid4().hex[:6]}"
    result = docker_cli.push(docker_cli.tag(tiny_image, registry.ref(name)))
    # Its layers count from their upload: the message says 1 MB more, or 1 MB used when
    # the registry's notifications of the uploads came first.
    refused(result, "denied: storage quota of acme exceeded: ", "1.0 MB", "used of 100.0 KB")
    assert RegistryClient().list_tags(name) == []
    # The layers it uploaded are on disk until garbage collection: they count till then.
    assert eventually(lambda: TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes > 100_000)


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_the_quota_counts_each_blob_once_and_refuses_what_does_not_fit(
    registry, eager_tasks, docker_cli, tiny_image, tenant_a, member, tmp_path
):
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=50 * 1000 * 1000)
    assert docker_cli.login(registry, member.username, PASSWORD).returncode == 0
    first = docker_cli.tag(tiny_image, registry.ref(f"acme/quota-{uuid.uuid4().hex[:6]}"))
    assert docker_cli.push(first).returncode == 0
    # What the gate reserved is what the usage walk finds in the registry.
    reserved = TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes
    assert reserved > 1_000_000
    pushed = first.split("/", 1)[1].split(":")[0].split("/", 1)[1]
    assert quota.refresh_usage(tenant_a).repositories[pushed] == reserved
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(used_bytes=reserved)

    # Little room left: the same image in another repository adds no byte and fits...
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(quota_bytes=reserved + 1000)
    again = docker_cli.tag(tiny_image, registry.ref(f"acme/quota-{uuid.uuid4().hex[:6]}"))
    assert docker_cli.push(again).returncode == 0, "an image the tenant already stores"
    # ...a new 3 MB layer does not.
    image = unique_image(tmp_path)
    docker_cli.tags.add(image)
    big = docker_cli.tag(image, registry.ref(f"acme/quota-{uuid.uuid4().hex[:6]}"))
    refused(docker_cli.push(big), "denied: storage quota of acme exceeded: ")
    # Its 3 MB layer was uploaded before the manifest was refused: it counts until
    # garbage collection frees it (a usage walk keeps it too).
    assert eventually(
        lambda: TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes > reserved + 3_000_000
    )
    assert quota.refresh_usage(tenant_a).total > reserved + 3_000_000

    # At the quota: no push token at all, whatever the image.
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(quota_bytes=reserved)
    third = docker_cli.tag(tiny_image, registry.ref(f"acme/quota-{uuid.uuid4().hex[:6]}"))
    refused(docker_cli.push(third), "storage quota of acme exceeded", "used of")
    # The usage walk found the repositories through the registry's paginated catalog.
    assert first.split("/", 1)[1].split(":")[0] in RegistryClient().catalog(page=1)


# --- garbage collection on a registry of its own (it gets restarted) -----------------------------


@pytest.fixture
def own_registry(live_server, tmp_path, settings):
    """A second registry for this test only: garbage collection restarts it, through the
    script that started it."""
    server = start_registry(tmp_path, live_server.url)
    settings.BERTH_REGISTRY_GC_COMMAND = server.gc_command
    settings.BERTH_REGISTRY_CONFIG = str(server.config)
    settings.BERTH_REGISTRY_ADDR = server.addr
    yield server
    stop_registry(server)  # stops the restarted process named by the pidfile too


def unique_image(tmp_path: Path) -> str:
    """An image with a 3 MB random layer nobody else has, so deleting it frees disk."""
    context = tmp_path / "unique-image"
    context.mkdir()
    (context / "blob").write_bytes(os.urandom(3 * 1024 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY blob /blob\nENV SECRET_TOKEN=hunter2\nEXPOSE 8080/tcp\n"
        'LABEL org.example.team="rockets"\nENTRYPOINT ["/blob"]\n'
    )
    tag = f"berth-test/gc-{uuid.uuid4().hex[:8]}:1"
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tag


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_gc_frees_disk_after_tags_are_deleted(
    own_registry, docker_cli, tmp_path, tenant_a, owner, member
):
    image = unique_image(tmp_path)
    docker_cli.tags.add(image)
    assert docker_cli.login(own_registry, member.username, PASSWORD).returncode == 0
    ref = docker_cli.tag(image, own_registry.ref("acme/gc-demo", "old"))
    assert docker_cli.push(ref).returncode == 0
    repository, _ = Repository.objects.get_or_create(tenant=tenant_a, name="gc-demo")

    # The page's view of the tag: layers and config, environment names without values.
    from apps.registry import browse

    info = browse.tag_info(repository, "old", RegistryClient(), with_layers=True)
    assert info.config.env_names[-1] == "SECRET_TOKEN" and "hunter2" not in str(info.config)
    assert info.config.exposed_ports == ("8080/tcp",) and info.config.entrypoint == ("/blob",)
    assert info.config.labels["org.example.team"] == "rockets"
    assert any(layer.size > 3_000_000 for layer in info.layers)

    services.delete_tag(actor=owner, repository=repository, tag="old")
    assert RegistryClient().list_tags("acme/gc-demo") == []
    before_pid = int(own_registry.pidfile.read_text().split()[0])

    result = services.collect_garbage(actor=owner)

    assert result.freed >= 3 * 1024 * 1024, result
    assert gc.disk_usage(own_registry.root) == result.after
    event = Event.objects.filter(action="registry.gc", outcome="success").latest("created_at")
    assert event.data["freed"] == result.freed
    # The script put the running registry in read-only mode for the collection, then
    # started it again read-write, under a new pid written to the pidfile.
    # Found anywhere in the text: the old registry's last output may share a line with
    # the next banner (two processes append to one log).
    starts = re.findall(
        r"berth: docker-registry starting( read-only)? ====", own_registry.log.read_text()
    )
    assert [mode == " read-only" for mode in starts[-2:]] == [True, False], starts
    new_pid, started = own_registry.pidfile.read_text().split()
    new_pid = int(new_pid)
    assert started == starttime(new_pid)
    assert new_pid != before_pid
    assert requests.get(f"{own_registry.url}/v2/", timeout=5).status_code == 401
    again = docker_cli.tag(image, own_registry.ref("acme/gc-demo", "new"))
    push = docker_cli.push(again)
    assert push.returncode == 0, push.stderr
