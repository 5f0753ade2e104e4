"""The registry's gate without the registry: who gets through, what a manifest costs,
and the quota reservation (tests/registry/test_quota_gc.py pushes through the real one).

BERTH_REGISTRY_ADDR points at 127.0.0.1:8, so the registry behind the gate would be
127.0.0.1:9, where nothing answers: a request the gate lets through ends in 503."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from apps.activity.models import Event
from apps.registry import config, gate, quota, services
from apps.registry.models import TenantRegistryQuota
from apps.registry.token.keys import signing_key
from apps.registry.token.service import issue_token

LAYER = "sha256:" + "a" * 64
CONFIG = "sha256:" + "c" * 64
OTHER = "sha256:" + "b" * 64
URL = "/registry/gate/v2/acme/web/manifests/1.0"


def manifest(*layers: tuple[str, int], config_blob=(CONFIG, 100)) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": config_blob[0], "size": config_blob[1]},
            "layers": [{"digest": d, "size": s} for d, s in layers],
        }
    ).encode()


def bearer(name="acme/web", actions=("pull", "push"), **options) -> dict:
    access = [{"type": "repository", "name": name, "actions": list(actions)}]
    token = issue_token(subject="marcus", access=access, **options).token
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def nothing_behind_the_gate(settings):
    settings.BERTH_REGISTRY_ADDR = "127.0.0.1:8"
    settings.BERTH_REGISTRY_BACKEND_ADDR = ""


def put(client, body: bytes, url: str = URL, **headers):
    return client.generic(
        "PUT",
        url,
        body,
        content_type="application/vnd.docker.distribution.manifest.v2+json",
        **headers,
    )


# --- pure parts ---------------------------------------------------------------------------


def test_manifest_path_names_the_repository_and_the_reference():
    assert gate.parse_manifest_path("/v2/acme/team/web/manifests/1.0") == ("acme/team/web", "1.0")
    assert gate.parse_manifest_path(f"/v2/acme/web/manifests/{LAYER}") == ("acme/web", LAYER)
    assert gate.parse_manifest_path("/v2/acme/web/blobs/uploads/") is None
    assert gate.parse_manifest_path("/v2/manifests/1") is None


def test_an_image_manifest_brings_its_config_and_layers_and_a_list_brings_nothing():
    assert gate.manifest_blobs(manifest((LAYER, 5000), (OTHER, 7))) == {
        CONFIG: 100,
        LAYER: 5000,
        OTHER: 7,
    }
    index = {"schemaVersion": 2, "manifests": [{"digest": LAYER, "size": 500}]}
    assert gate.manifest_blobs(json.dumps(index).encode()) == {}
    for garbage in (b"", b"not json", b"[1, 2]", b'{"layers": [{"digest": 1, "size": "x"}]}'):
        assert gate.manifest_blobs(garbage) == {}
    negative = manifest((LAYER, -5))
    assert gate.manifest_blobs(negative) == {CONFIG: 100}


def test_the_backend_is_on_loopback_next_to_the_gate(settings):
    assert config.backend_addr() == "127.0.0.1:9"
    settings.BERTH_REGISTRY_ADDR = "0.0.0.0:5000"
    assert config.backend_addr() == "127.0.0.1:5001"
    cfg = config.render_gate_config(portal="127.0.0.1:8000")
    settings.BERTH_REGISTRY_BACKEND_ADDR = "127.0.0.1:7000"
    assert config.backend_addr() == "127.0.0.1:7000"
    assert "bind 0.0.0.0:5000" in cfg and "server registry 127.0.0.1:5001" in cfg
    assert "server berth 127.0.0.1:8000" in cfg


# --- who gets through ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_push_token_for_the_repository_is_needed(client):
    # The challenge's error is what makes the docker daemon give up at once (no error:
    # the client asks for a token first).
    for headers, error in (
        ({}, None),
        ({"HTTP_AUTHORIZATION": "Basic bWFyY3VzOnB3"}, None),
        ({"HTTP_AUTHORIZATION": "Bearer not-a-jwt"}, "invalid_token"),
        (bearer(name="acme/other"), "insufficient_scope"),  # another repository
        (bearer(actions=("pull",)), "insufficient_scope"),  # no push
        (bearer(audience="another-registry"), "invalid_token"),
    ):
        response = put(client, manifest((LAYER, 10)), **headers)
        assert response.status_code == 401, headers
        (refusal,) = response.json()["errors"]
        assert refusal["code"] == "UNAUTHORIZED"
        assert refusal["detail"] == [
            {"Type": "repository", "Class": "", "Name": "acme/web", "Action": "push"}
        ]
        challenge = response["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{config.token_realm()}"')
        assert 'scope="repository:acme/web:pull,push"' in challenge
        assert ("error=" not in challenge) if error is None else f'error="{error}"' in challenge


@pytest.mark.django_db
def test_an_expired_token_is_not_enough(client, settings):
    key, now = signing_key(), int(time.time())
    claims = {
        "iss": settings.BERTH_REGISTRY_ISSUER,
        "sub": "marcus",
        "aud": settings.BERTH_REGISTRY_SERVICE,
        "iat": now - 400,
        "nbf": now - 400,
        "exp": now - 100,
        "access": [{"type": "repository", "name": "acme/web", "actions": ["push"]}],
    }
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    response = put(client, manifest((LAYER, 10)), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


@pytest.mark.django_db
def test_a_valid_push_goes_on_to_the_registry(client, tenant_a):
    # No quota: nothing counted, the request is forwarded (and nothing answers there).
    response = put(client, manifest((LAYER, 10)), **bearer())
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


@pytest.mark.django_db
def test_a_push_past_the_quota_is_denied_in_the_registry_format(client, tenant_a):
    TenantRegistryQuota.objects.create(
        tenant=tenant_a, quota_bytes=10_000, used_bytes=4_000, blob_sizes={OTHER: 4_000}
    )
    response = put(client, manifest((LAYER, 7_000)), **bearer())
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"].replace("\xa0", " ") == (
        "storage quota of acme exceeded: this push needs 6.9 KB more, 3.9 KB used of "
        "9.8 KB; delete tags or ask an administrator for more space"
    )
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes == 4_000
    event = Event.objects.get(action="registry.push_refused")
    assert event.tenant == tenant_a and event.outcome == Event.Outcome.FAILURE
    assert event.data == {"repository": "acme/web", "subject": "marcus"}
    # One that fits is reserved, then forwarded.
    assert (
        put(client, manifest((LAYER, 5_000), config_blob=(CONFIG, 1)), **bearer()).status_code
        == 503
    )
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes == 9_001


@pytest.mark.django_db
def test_an_oversized_manifest_is_refused(client, tenant_a):
    response = put(client, b" " * (gate.MAX_MANIFEST + 1), **bearer())
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "SIZE_INVALID"


@pytest.mark.django_db
def test_only_put_is_served(client):
    assert client.get(URL, **bearer()).status_code == 405


# --- the reservation ----------------------------------------------------------------------


@pytest.mark.django_db
def test_admit_counts_each_blob_once_per_tenant(tenant_a):
    assert quota.admit_manifest(tenant_a, {LAYER: 10**9}) is None  # no quota row: unlimited
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=1000)
    assert quota.admit_manifest(tenant_a, {LAYER: 600}) is None
    assert "needs 600" in quota.admit_manifest(tenant_a, {OTHER: 600}).replace("\xa0", " ")
    assert quota.admit_manifest(tenant_a, {LAYER: 600}) is None  # already held
    assert quota.admit_manifest(tenant_a, {LAYER: 600, CONFIG: 400}) is None  # exactly full
    row = TenantRegistryQuota.objects.get(tenant=tenant_a)
    assert row.used_bytes == 1000 and set(row.blob_sizes) == {LAYER, CONFIG}
    assert quota.admit_manifest(tenant_a, {OTHER: 1}) is not None


@pytest.mark.django_db
def test_zero_quota_means_unlimited(tenant_a):
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=0, used_bytes=5)
    assert quota.admit_manifest(tenant_a, {LAYER: 10**12}) is None
    assert TenantRegistryQuota.objects.get(tenant=tenant_a).used_bytes == 5


@pytest.mark.django_db
def test_usage_measured_before_digests_were_kept_is_walked_once(tenant_a, monkeypatch):
    """A quota row from before `blob_sizes` existed: learn the digests from the registry
    rather than count every blob of the push as new."""
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=1000, used_bytes=700)
    walked = []

    def walk(tenant):
        walked.append(tenant)
        TenantRegistryQuota.objects.filter(tenant=tenant).update(blob_sizes={LAYER: 700})

    monkeypatch.setattr(quota, "refresh_usage", walk)
    assert quota.admit_manifest(tenant_a, {LAYER: 700, CONFIG: 300}) is None
    assert quota.admit_manifest(tenant_a, {OTHER: 1}) is not None
    assert walked == [tenant_a]


def test_the_registry_named_by_the_gate_is_believed_only_with_its_secret():
    named = {"X-Berth-Registry-Backend": "127.0.0.1:6001"}
    assert gate.backend_for(named) == "127.0.0.1:9"  # a client's say-so: ignored
    forged = {**named, "X-Berth-Gate-Secret": "guess"}
    assert gate.backend_for(forged) == "127.0.0.1:9"
    genuine = {**named, "X-Berth-Gate-Secret": config.gate_secret()}
    assert gate.backend_for(genuine) == "127.0.0.1:6001"
    odd = {"X-Berth-Registry-Backend": "evil/path?x", "X-Berth-Gate-Secret": config.gate_secret()}
    assert gate.backend_for(odd) == "127.0.0.1:9"
    cfg = config.render_gate_config(front="127.0.0.1:6000", portal="127.0.0.1:8000")
    assert f"X-Berth-Gate-Secret {config.gate_secret()}" in cfg
    assert "X-Berth-Registry-Backend 127.0.0.1:6001" in cfg


@pytest.mark.django_db
def test_a_reservation_the_registry_did_not_honour_is_walked_back(client, tenant_a, monkeypatch):
    """The registry behind the gate does not answer: the bytes reserved for the push are
    given back by a usage walk, queued for the worker."""
    queued = []
    monkeypatch.setattr(services, "enqueue", lambda task, *args: queued.append((task.name, args)))
    TenantRegistryQuota.objects.create(tenant=tenant_a, quota_bytes=10_000, blob_sizes={})
    assert put(client, manifest((LAYER, 10)), **bearer()).status_code == 503
    assert queued == [("registry.refresh_usage", (tenant_a.pk,))]
    queued.clear()
    TenantRegistryQuota.objects.filter(tenant=tenant_a).update(quota_bytes=0)
    assert put(client, manifest((OTHER, 10)), **bearer()).status_code == 503
    assert queued == [], "nothing was reserved without a quota"


def test_bad_names_and_references_are_not_manifest_routes():
    for path in (
        "/v2/Acme/web/manifests/1",
        "/v2/acme/web/manifests/-bad",
        "/v2/acme//web/manifests/1",
        "/v2/acme/web/manifests/sha256:short",
    ):
        assert gate.parse_manifest_path(path) is None, path


def test_the_gate_and_the_registry_agree_on_the_registry_address(settings):
    """make run renders both files with no address given: config.yml's listen address
    and the gate's server line must be the same, BERTH_REGISTRY_BACKEND_ADDR or not."""
    for backend in ("", "127.0.0.1:7000"):
        settings.BERTH_REGISTRY_BACKEND_ADDR = backend
        listen = config.build_config()["http"]["addr"]
        assert f"server registry {listen}\n" in config.render_gate_config(portal="x:1")
