"""The Prometheus endpoints: `/metrics` is never open; the tenant endpoint shows a
tenant's own series only; and a real Prometheus (Debian's) scrapes it with a token."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone

from apps.accounts import services as token_services
from apps.monitoring.models import ContainerSample, HostSample, Series
from tests.fixtures.daphne_server import free_port

pytestmark = pytest.mark.django_db


def sampled(tenant, name: str, memory: int) -> Series:
    """A container series of `tenant` with one fresh raw row."""
    now = timezone.now().replace(microsecond=0)
    series = Series.objects.create(
        kind=Series.Kind.CONTAINER,
        key=f"c1:{name}",
        tenant=tenant,
        tenant_slug=tenant.slug,
        environment_slug="dev",
        stack_name=f"{name}-stack",
        service_name="web",
        name=name,
        host_name="local",
        first_seen_at=now,
        last_seen_at=now,
    )
    ContainerSample.objects.create(
        series=series, tier=0, at=now, cpu_percent=1.5, cpu_ns=2 * 10**9, memory_bytes=memory
    )
    return series


@pytest.fixture
def two_tenants(tenant_a, tenant_b):
    now = timezone.now().replace(microsecond=0)
    sampled(tenant_a, "acme-web-1", 1111)
    sampled(tenant_b, "globex-db-1", 2222)
    host = Series.objects.create(
        kind=Series.Kind.HOST, key="h1", name="local", host_name="local",
        first_seen_at=now, last_seen_at=now,
    )  # fmt: skip
    HostSample.objects.create(series=host, tier=0, at=now, containers=2, running=2)
    return tenant_a, tenant_b


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_platform_metrics_needs_an_admin_or_the_metrics_token(
    client, two_tenants, owner, superuser, settings
):
    settings.BERTH_METRICS_TOKEN = "scrape-secret-1234"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", **bearer("wrong")).status_code == 401
    _, owner_token = token_services.create_token(actor=owner, name="cli")
    assert client.get("/metrics", **bearer(owner_token)).status_code == 403
    _, admin_token = token_services.create_token(actor=superuser, name="ops")
    for credential in (admin_token, "scrape-secret-1234"):
        response = client.get("/metrics", **bearer(credential))
        assert response.status_code == 200
        text = response.content.decode()
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'berth_container_memory_bytes{tenant="acme"' in text
        assert 'container="globex-db-1"' in text
        assert 'berth_host_running_containers{host="local"} 2' in text
    settings.BERTH_METRICS_TOKEN = ""
    assert client.get("/metrics", **bearer("scrape-secret-1234")).status_code == 401


def test_tenant_endpoint_shows_only_the_callers_tenants(client, two_tenants, owner, superuser):
    tenant_a, _ = two_tenants
    _, raw = token_services.create_token(actor=owner, name="prom", tenant=tenant_a)
    text = client.get("/api/v1/metrics/prometheus/", **bearer(raw)).content.decode()
    labels = (
        'tenant="acme",environment="dev",stack="acme-web-1-stack",service="web",'
        'container="acme-web-1",host="local"'
    )
    assert f"berth_container_memory_bytes{{{labels}}} 1111" in text
    assert "globex" not in text and "berth_host_" not in text
    # A platform admin's own scrape is his memberships', not the platform.
    _, admin = token_services.create_token(actor=superuser, name="ops")
    assert (
        "berth_container"
        not in client.get("/api/v1/metrics/prometheus/", **bearer(admin)).content.decode()
    )
    assert client.get("/api/v1/metrics/prometheus/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_a_tenants_series_only(two_tenants, owner, live_server, tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is not installed (deploy/lib.sh installs it)"
    tenant_a, _ = two_tenants
    _, raw = token_services.create_token(actor=owner, name="prom", tenant=tenant_a)
    target = urlsplit(live_server.url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "berth-tenant",
                        "metrics_path": "/api/v1/metrics/prometheus/",
                        "authorization": {"type": "Bearer", "credentials": raw},
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        result = query_until_found(port, "berth_container_memory_bytes", tmp_path)
        containers = {r["metric"]["container"]: r["value"][1] for r in result}
        assert containers == {"acme-web-1": "1111"}
        assert {r["metric"]["tenant"] for r in result} == {"acme"}
        up = query(port, 'up{job="berth-tenant"}')
        assert up[0]["value"][1] == "1"
    finally:
        process.terminate()
        process.wait(timeout=20)


def query(port: int, expression: str) -> list[dict]:
    response = requests.get(
        f"http://127.0.0.1:{port}/api/v1/query", params={"query": expression}, timeout=5
    )
    return response.json()["data"]["result"]


def query_until_found(port: int, expression: str, tmp_path: Path) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            found = query(port, expression)
        except requests.RequestException:
            found = []
        if found:
            return found
        time.sleep(0.5)
    log = (tmp_path / "prometheus.log").read_text()[-2000:]
    raise AssertionError(f"Prometheus never saw {expression}:\n{log}")
