"""The "disk nearly full" rule: judged on the disk probe's fresh figures of the hosts a
tenant's environments use (never another tenant's), space or inodes, with a duration;
bad input answered per field by the API and the form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert, AlertRule
from apps.hosts.models import Host
from apps.monitoring.models import HostDisk
from apps.tenants.models import Environment

pytestmark = pytest.mark.django_db


def disk(name: str, used: int, free: int, *, inodes_used: int = 1, age: int = 0) -> Host:
    host = Host.objects.create(name=name, endpoint=f"tcp://{name}.invalid:2376")
    HostDisk.objects.create(
        host=host,
        measured_at=timezone.now() - timedelta(seconds=age),
        data_root="/var/lib/docker",
        storage_driver="overlay2",
        total_bytes=used + free,
        used_bytes=used,
        free_bytes=free,
        inodes_total=100,
        inodes_used=inodes_used,
    )
    return host


def rule(owner, tenant, threshold: float, **extra) -> AlertRule:
    data = {"name": "disk", "kind": "disk_full", "threshold": threshold, **extra}
    return services.create_rule(owner, tenant, data)


def test_fires_after_its_duration_on_the_tenants_hosts_only(tenant_a, tenant_b, owner, outsider):
    dev = Environment.objects.get(tenant=tenant_a, slug="dev")
    full, roomy, inodes = (
        disk("full", 95, 5),
        disk("roomy", 10, 90),
        disk("inodes", 1, 99, inodes_used=97),
    )
    dev.hosts.add(full, roomy, inodes)
    foreign = disk("foreign", 99, 1)
    Environment.objects.get(tenant=tenant_b, slug="dev").hosts.add(foreign)
    mine = rule(owner, tenant_a, 90, duration_seconds=60)
    theirs = rule(outsider, tenant_b, 99.5)
    now = timezone.now()
    evaluate(now, send=False)
    assert set(Alert.objects.values_list("subject", "state")) == {
        ("full", "pending"),
        ("inodes", "pending"),
    }
    evaluate(now + timedelta(seconds=61), send=False)
    alert = Alert.objects.get(rule=mine, subject="full")
    assert alert.state == "firing" and alert.value == 95.0
    assert "95.0% used" in alert.message and "alert at 90%" in alert.message
    assert Alert.objects.get(rule=mine, subject="inodes").value == 97.0
    assert not Alert.objects.filter(rule=theirs).exists()  # 99 % used < 99.5


def test_stale_figures_are_not_judged_and_a_lower_usage_resolves(tenant_a, owner):
    dev = Environment.objects.get(tenant=tenant_a, slug="dev")
    host = disk("h", 95, 5)
    dev.hosts.add(host, disk("old", 99, 1, age=86400))
    rule(owner, tenant_a, 90)
    evaluate(timezone.now(), send=False)
    assert list(Alert.objects.values_list("subject", "state")) == [("h", "firing")]
    HostDisk.objects.filter(host=host).update(used_bytes=50, free_bytes=50)
    evaluate(timezone.now(), send=False)
    assert Alert.objects.get().state == "resolved"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 100.5}, "threshold"),
        ({"threshold": "full"}, "threshold"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"duration_seconds": 8 * 86400}, "duration_seconds"),
    ],
)
def test_bad_disk_rule_input_is_a_400_naming_the_field(tenant_a, member, change, field):
    body = {"tenant": "acme", "name": "disk", "kind": "disk_full", "threshold": 90, **change}
    answer = client_for(member).post("/api/v1/alert-rules/", body, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == [field]
    assert not AlertRule.objects.exists()


def test_api_and_pages_create_and_show_a_disk_rule_to_its_tenant_only(tenant_a, member, outsider):
    body = {"tenant": "acme", "name": "rootfs-watch", "kind": "disk_full", "threshold": 85}
    answer = client_for(member).post("/api/v1/alert-rules/", body, content_type="application/json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["kind"] == "disk_full" and answer.json()["threshold"] == 85
    url = f"/api/v1/alert-rules/{answer.json()['id']}/"
    assert client_for(outsider).get(url).status_code == 404
    assert client_for(outsider).get("/api/v1/alert-rules/").json()["results"] == []
    page = client_for(member).get(reverse("alerts:rules")).content.decode()
    assert "rootfs-watch" in page and "≥ 85.0% used" in page
    assert "rootfs-watch" not in client_for(outsider).get(reverse("alerts:rules")).content.decode()
    form = client_for(member).post(
        reverse("alerts:rule-create"), {"name": "d2", "kind": "disk_full", "threshold": "150"}
    )
    assert form.status_code == 400 and "threshold" in form.context["form"].errors
