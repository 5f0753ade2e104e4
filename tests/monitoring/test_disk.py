"""The disk probe's pure parts (its `df` output, df's Use%) and where its figures show:
the platform's /metrics (never a tenant's endpoint) and the host page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts import services as token_services
from apps.hosts.engine.diskprobe import DiskUsage, parse_df
from apps.hosts.models import Host
from apps.monitoring.disk import probe_disks
from apps.monitoring.models import HostDisk

OVERLAY = """Filesystem           1-blocks      Used Available Capacity Mounted on
overlay              270553174016 26553864192 82390429696  24% /
Filesystem              Inodes      Used Available Capacity Mounted on
overlay               16777216    444399  16332817   3% /
"""


def test_df_blocks_and_inodes_are_read_from_the_two_tables():
    assert parse_df(OVERLAY) == ((270553174016, 26553864192, 82390429696), (16777216, 444399))


def test_a_wrapped_line_and_a_filesystem_without_inodes():
    wrapped = (
        "Filesystem 1-blocks Used Available Capacity Mounted on\n"
        "/dev/mapper/a-very-long-volume-group-name-that-wraps\n"
        "   1000   250   700  26% /\n"
        "Filesystem Inodes Used Available Capacity Mounted on\n"
        "btrfs 0 0 0 0% /\n"
    )
    assert parse_df(wrapped) == ((1000, 250, 700), None)


@pytest.mark.parametrize(
    "output", ["", "sh: df: not found\n", "Filesystem x\noverlay a b c 1% /\n"]
)
def test_output_that_is_not_df_is_refused(output):
    with pytest.raises(ValueError):
        parse_df(output)


def test_used_percent_is_dfs_used_out_of_used_plus_available():
    usage = DiskUsage("/var/lib/docker", "overlay2", 1000, 300, 100, 10, 9)
    assert usage.used_percent == 75.0  # the 600 reserved for root count as neither
    assert usage.inodes_used_percent == 90.0
    assert DiskUsage("/", "vfs", 0, 0, 0).used_percent == 0.0


@pytest.fixture
def measured(db):
    host = Host.objects.create(
        name="local", endpoint="unix:///nonexistent/d.sock", state=Host.State.ACTIVE
    )
    return HostDisk.objects.create(
        host=host,
        measured_at=timezone.now(),
        data_root="/var/lib/docker",
        storage_driver="overlay2",
        total_bytes=1000,
        used_bytes=300,
        free_bytes=100,
        inodes_total=10,
        inodes_used=1,
    )


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_metrics_show_the_disk_gauges_to_the_platform_only(
    client, measured, superuser, owner, tenant_a
):
    _, admin = token_services.create_token(actor=superuser, name="ops")
    text = client.get("/metrics", **bearer(admin)).content.decode()
    labels = 'host="local",data_root="/var/lib/docker"'
    assert "# TYPE berth_host_disk_free_bytes gauge" in text
    for line in (
        f"berth_host_disk_total_bytes{{{labels}}} 1000",
        f"berth_host_disk_used_bytes{{{labels}}} 300",
        f"berth_host_disk_free_bytes{{{labels}}} 100",
        f"berth_host_disk_used_percent{{{labels}}} 75.0",
        f"berth_host_disk_inodes_used{{{labels}}} 1",
    ):
        assert line in text
    _, mine = token_services.create_token(actor=owner, name="prom", tenant=tenant_a)
    tenant_text = client.get("/api/v1/metrics/prometheus/", **bearer(mine)).content.decode()
    assert "berth_host_disk" not in tenant_text


def test_the_host_page_shows_the_disk_and_the_last_probe_error(client, measured, superuser):
    measured.error, measured.error_at = "The engine said no.", timezone.now()
    measured.save()
    client.force_login(superuser, backend="django.contrib.auth.backends.ModelBackend")
    body = client.get(f"/hosts/{measured.host_id}/").content.decode()
    assert "75.0%" in body and "/var/lib/docker" in body and "overlay2" in body
    assert "The engine said no." in body


def test_a_failed_probe_keeps_the_last_figures_and_says_why(measured):
    result = probe_disks()
    assert result.measured == [] and list(result.failed) == ["local"]
    measured.refresh_from_db()
    assert measured.used_bytes == 300 and measured.error and measured.error_at is not None


def test_the_host_disk_has_a_history_while_its_figures_are_fresh(client, measured, superuser):
    """Each metrics pass writes the probe's newest figures into the host's row, so the
    host's charts draw the disk over time; figures older than three probes are not."""
    from datetime import timedelta

    from apps.monitoring.collector import Observed, PassResult, write_containers
    from apps.monitoring.models import HostSample

    host = measured.host
    now = timezone.now().replace(microsecond=0)
    write_containers([Observed(host)], now - timedelta(seconds=20), PassResult())
    measured.used_bytes = 350
    measured.save()
    write_containers([Observed(host)], now - timedelta(seconds=10), PassResult())
    HostDisk.objects.filter(pk=measured.pk).update(measured_at=now - timedelta(hours=1))
    write_containers([Observed(host)], now, PassResult())
    rows = HostSample.objects.filter(series__host_pk=host.pk).order_by("at")
    assert [(r.disk_used_bytes, r.disk_usable_bytes) for r in rows] == [
        (300, 400),
        (350, 450),
        (None, None),  # the probe's figures are an hour old: nothing is drawn
    ]
    client.force_login(superuser, backend="django.contrib.auth.backends.ModelBackend")
    payload = client.get(f"/monitoring/charts/host/{host.pk}/?range=1h").json()
    disk = next(c for c in payload["charts"] if c["key"] == "disk")
    lines = {s["label"]: s["values"] for s in disk["series"]}
    assert lines == {"used": [300.0, 350.0, None], "usable size": [400.0, 450.0, None]}
