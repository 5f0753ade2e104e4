"""Hosts over the API: platform admins only; everyone else finds nothing there."""

import pytest
from django.conf import settings

from apps.activity.models import Event
from apps.hosts import services as host_services
from apps.hosts.models import Host
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


@pytest.fixture
def edge_host():
    return host_services.register_host(actor=None, name="edge-1", endpoint="tcp://10.9.8.7:2376")


@pytest.fixture
def admin_client(api_as, superuser):
    client, _ = api_as(superuser)
    return client


def test_admin_lists_and_retrieves(admin_client, edge_host):
    rows = results(admin_client.get("/api/v1/hosts/"))
    assert [(r["name"], r["state"]) for r in rows] == [("edge-1", "pending")]
    detail = admin_client.get(f"/api/v1/hosts/{edge_host.pk}/").json()
    assert detail["endpoint"] == "tcp://10.9.8.7:2376"
    assert "tls_client_key" not in detail


def test_admin_registers_a_host(admin_client):
    body = {"name": "edge-2", "endpoint": "tcp://10.0.0.5:2376", "labels": {"zone": "a"}}
    response = admin_client.post("/api/v1/hosts/", body, format="json")
    assert response.status_code == 201, response.content
    assert Host.objects.get(name="edge-2").labels == {"zone": "a"}
    assert Event.objects.filter(action="host.register", tenant=None).exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "endpoint": "http://example"}, "endpoint"),
        ({"name": "x", "endpoint": "tcp://h:99999"}, "endpoint"),
        ({"name": "bad name!", "endpoint": "tcp://h:2376"}, "name"),
        ({"name": "edge-1", "endpoint": "tcp://h:2376"}, "name"),
        ({"name": "x", "endpoint": "tcp://h:2376", "labels": ["a"]}, "labels"),
        ({"name": "x", "endpoint": "tcp://h:2376", "tls_ca_cert": "junk"}, "tls_client_cert"),
        ({"name": "x", "endpoint": "tcp://h:2376", "state": "active"}, "state"),
        ({"name": "x", "endpoint": "tcp://h:2376", "cpus": 64}, "cpus"),
        ({"endpoint": "tcp://h:2376"}, "name"),
    ],
)
def test_bad_host_is_400(admin_client, edge_host, body, field):
    response = admin_client.post("/api/v1/hosts/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Host.objects.count() == 1


def test_admin_changes_a_host(admin_client, edge_host):
    url = f"/api/v1/hosts/{edge_host.pk}/"
    response = admin_client.patch(url, {"labels": {"ssd": "yes"}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["labels"] == {"ssd": "yes"}
    bad = admin_client.patch(url, {"endpoint": "ftp://x"}, format="json")
    assert bad.status_code == 400 and "endpoint" in bad.json()
    refused = admin_client.patch(url, {"state": "active"}, format="json")
    assert refused.status_code == 400 and "state" in refused.json()


def test_drain_and_activate(admin_client, edge_host):
    drained = admin_client.post(f"/api/v1/hosts/{edge_host.pk}/drain/")
    assert drained.status_code == 200 and drained.json()["draining"] is True
    active = admin_client.post(f"/api/v1/hosts/{edge_host.pk}/activate/")
    assert active.status_code == 200 and active.json()["draining"] is False


def test_heartbeat_of_an_unreachable_engine_is_recorded(admin_client, tmp_path):
    gone = host_services.register_host(
        actor=None, name="gone", endpoint=f"unix://{tmp_path}/no-engine/docker.sock"
    )
    response = admin_client.post(f"/api/v1/hosts/{gone.pk}/heartbeat/")
    assert response.status_code == 200
    data = response.json()
    assert data["state"] == "unreachable"
    assert data["last_error"]


@pytest.mark.engine
def test_heartbeat_of_the_real_engine(admin_client):
    local = host_services.register_host(
        actor=None, name="local-api", endpoint=settings.BERTH_DOCKER_HOST
    )
    data = admin_client.post(f"/api/v1/hosts/{local.pk}/heartbeat/").json()
    assert data["state"] == "active", data["last_error"]
    assert data["engine_version"] and data["cpus"]


def test_admin_removes_a_host(admin_client, edge_host):
    assert admin_client.delete(f"/api/v1/hosts/{edge_host.pk}/").status_code == 204
    assert not Host.objects.exists()


def test_read_only_admin_token_cannot_change_hosts(api_as, superuser, edge_host):
    client, _ = api_as(superuser, read_only=True)
    assert client.get(f"/api/v1/hosts/{edge_host.pk}/").status_code == 200
    assert client.post(f"/api/v1/hosts/{edge_host.pk}/drain/").status_code == 403
    assert client.delete(f"/api/v1/hosts/{edge_host.pk}/").status_code == 403


def test_non_admins_find_nothing(api_as, tenant_a, owner, edge_host):
    client, _ = api_as(owner)
    for response in [
        client.get("/api/v1/hosts/"),
        client.get(f"/api/v1/hosts/{edge_host.pk}/"),
        client.post("/api/v1/hosts/", {"name": "mine", "endpoint": "tcp://h:1"}),
        client.post(f"/api/v1/hosts/{edge_host.pk}/heartbeat/"),
        client.patch(f"/api/v1/hosts/{edge_host.pk}/", {"name": "x"}, format="json"),
        client.delete(f"/api/v1/hosts/{edge_host.pk}/"),
    ]:
        assert response.status_code == 404
        assert "edge-1" not in response.content.decode()
    assert Host.objects.get().name == "edge-1"
