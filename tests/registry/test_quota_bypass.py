"""The storage quota cannot be passed around the gate, on the real registry behind the
real gate (HAProxy): blobs no manifest references count as soon as they are uploaded,
and a manifest upload spelled with percent-encoding, dot or empty segments is refused
before the registry can decode it into a manifest path the gate did not check."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import uuid

import pytest
import requests

from apps.registry import quota
from apps.registry.client import RegistryClient
from apps.registry.models import TenantRegistryQuota
from apps.registry.token.service import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


def auth(name: str) -> dict:
    access = [{"type": "repository", "name": name, "actions": ["pull", "push"]}]
    return {"Authorization": f"Bearer {issue_token(subject='marcus', access=access).token}"}


def upload_blob(registry, name: str, data: bytes) -> str:
    """The registry's own two-step upload (POST a session, PUT the bytes): its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", headers=auth(name))
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    done = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={**auth(name), "Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return digest


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_unreferenced_blobs_count_against_the_quota(registry, tenant_a):
    before = quota.refresh_usage(tenant_a).total  # the session's registry has other images
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(quota_bytes=before + 150_000)
    assert quota.can_push(tenant_a)[0]
    name = f"acme/blobs-{uuid.uuid4().hex[:6]}"
    digest = upload_blob(registry, name, os.urandom(100_000))  # no manifest, ever

    def counted():
        return TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes >= before + 100_000

    assert wait_for(counted), "the registry's blob push notification was not counted"
    row = TenantRegistryQuota.objects.get(tenant=tenant_a)
    assert row.blob_sizes[digest] == 100_000
    # A usage walk (after every push, and after garbage collection) keeps counting it.
    assert quota.refresh_usage(tenant_a).total == before + 100_000
    upload_blob(registry, name, os.urandom(60_000))
    assert wait_for(lambda: not quota.can_push(tenant_a)[0]), "past the quota: no push token"

    # A push token granted before (valid for minutes) opens no new upload either: the
    # gate refuses the POST that starts one, so no more bytes reach the disk.
    refused = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", headers=auth(name))
    assert refused.status_code == 403, refused.text
    assert "storage quota of acme exceeded" in refused.json()["errors"][0]["message"]
    mount = requests.post(
        f"{registry.url}/v2/{name}/blobs/uploads/",
        params={"mount": digest, "from": name},
        headers=auth(name),
    )
    assert mount.status_code == 403
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes < before + 170_000


def test_the_gate_lets_uploads_start_under_the_quota_and_checks_the_token(registry, tenant_a):
    name = f"acme/start-{uuid.uuid4().hex[:6]}"
    no_token = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/")
    assert no_token.status_code == 401 and "Bearer realm" in no_token.headers["WWW-Authenticate"]
    other = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", headers=auth("acme/else"))
    assert other.status_code == 401
    started = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", headers=auth(name))
    assert started.status_code == 202 and started.headers["Location"]


def image_manifest(registry, name: str) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    layer = os.urandom(2048)
    config_digest = upload_blob(registry, name, config)
    layer_digest = upload_blob(registry, name, layer)
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()


def quota_of_acme(tenant):
    return TenantRegistryQuota.objects.get_or_create(tenant=tenant)[0]


def raw_put(registry, path: str, body: bytes, name: str) -> int:
    """PUT with the path exactly as given (no client-side normalising or re-quoting)."""
    host, port = registry.addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {
        **auth(name),
        "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
    }
    try:
        connection.request("PUT", path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/{repo}/manifests%2F1",
        "/v2/{repo}%2Fmanifests%2F1",
        "/v2/{repo}/%6danifests/1",
        "/v2/{ns}%2F{short}/manifests/1",
        "/v2/{ns}%2f{short}/manifests/1",
        "/v2/{ns}%252F{short}/manifests/1",
        "/v2/{repo}/x/../manifests/1",
        "/v2/{repo}//manifests/1",
        "/v2/{repo}/manifests/1/.",
    ],
)
def test_a_manifest_path_spelled_otherwise_is_refused_and_nothing_is_tagged(
    registry, tenant_a, path
):
    short = f"enc-{uuid.uuid4().hex[:6]}"
    repo = f"acme/{short}"
    body = image_manifest(registry, repo)
    assert wait_for(lambda: quota_of_acme(tenant_a).used_bytes > 2048)  # uploads counted
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(quota_bytes=1)
    status = raw_put(registry, path.format(repo=repo, ns="acme", short=short), body, repo)
    assert status >= 400, status
    assert RegistryClient().list_tags(repo) == []
    # The plain spelling reaches the gate, which refuses it: the uploads passed the quota.
    assert raw_put(registry, f"/v2/{repo}/manifests/1", body, repo) == 403
    assert RegistryClient().list_tags(repo) == []
