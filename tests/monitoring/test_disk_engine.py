"""The disk probe on the real engine: its figures are the data root's filesystem as
`statvfs` sees it from this machine (the engine is local), nothing of it is left
running, its image is this installation's; and a "disk nearly full" rule fires on the
real measurement with a threshold below the real usage, and resolves above it."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.utils import timezone

from apps.alerts import services
from apps.alerts.evaluation import evaluate
from apps.alerts.models import Alert
from apps.hosts.engine.diskprobe import probe_tag
from apps.hosts.engine.labels import installation_id
from apps.hosts.engine.swarm import SwarmCluster
from apps.monitoring.disk import probe_disks
from apps.monitoring.models import HostDisk
from tests.fixtures.engine import docker

pytestmark = [pytest.mark.engine, pytest.mark.django_db]

GIB = 1024**3


@pytest.fixture(scope="module")
def probe_image() -> Iterator[str]:
    """This run's probe image (built by the first probe), removed after the module, once
    no probe container is left."""
    tag = probe_tag()
    yield tag
    left = docker("ps", "-aq", "--filter", f"name=berth-{installation_id()}-diskprobe-")
    docker("rmi", "-f", tag, check=False)
    assert left == "", "a probe container was left behind"


def test_the_probe_measures_the_data_root_and_leaves_only_its_labelled_image(host, probe_image):
    info = json.loads(docker("info", "--format", "{{json .}}"))
    result = probe_disks()
    assert result.measured == ["local"], result.failed
    row = HostDisk.objects.get(host=host)
    real = os.statvfs(info["DockerRootDir"])
    assert (row.data_root, row.storage_driver) == (info["DockerRootDir"], info["Driver"])
    assert row.total_bytes == real.f_blocks * real.f_frsize
    # Other tests write to the same disk meanwhile: a little slack, not a difference in kind.
    assert abs(row.free_bytes - real.f_bavail * real.f_frsize) < GIB
    assert abs(row.used_bytes - (real.f_blocks - real.f_bfree) * real.f_frsize) < GIB
    assert row.inodes_total == real.f_files
    labels = json.loads(
        docker("image", "inspect", probe_image, "--format", "{{json .Config.Labels}}")
    )
    assert labels == {
        "io.berth.managed": "true",
        "io.berth.installation": installation_id(),
        "io.berth.role": "disk-probe",
    }


def test_a_new_busybox_leaves_no_older_probe_image_and_another_installations_alone(
    host, probe_image, tmp_path
):
    """A new busybox makes a new probe tag; the build untags this installation's older
    ones, never an image of another installation, even under the same repository."""
    assert probe_disks().measured == ["local"]  # the current image is there
    older = f"berth-probe/disk:{installation_id()}-0123456789ab"
    docker("tag", probe_image, older)
    docker("rmi", probe_image)  # as if busybox changed: the current tag is missing
    theirs = f"berth-probe/disk:another-installation-{uuid.uuid4().hex[:6]}"
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nLABEL io.berth.managed=true io.berth.installation=another "
        "io.berth.role=disk-probe\n"
    )
    docker("build", "-q", "-t", theirs, str(tmp_path))
    try:
        assert probe_disks().measured == ["local"]  # builds the current tag again
        assert docker("image", "inspect", older, check=False) == "[]"
        assert docker("image", "inspect", theirs, "--format", "{{.Id}}")
        assert docker("image", "inspect", probe_image, "--format", "{{.Id}}")
    finally:
        docker("rmi", "-f", older, theirs, check=False)


def test_a_disk_rule_fires_below_the_real_usage_and_resolves_above_it(
    host, environment, owner, probe_image
):
    environment.hosts.add(host)
    assert probe_disks().measured == ["local"]
    used = HostDisk.objects.get(host=host).used_percent
    tenant = environment.tenant
    rule = services.create_rule(
        owner,
        tenant,
        {"name": "disk", "kind": "disk_full", "threshold": max(1, math.floor(used) - 1)},
    )
    evaluate(timezone.now(), send=False)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing" and alert.subject == "local"
    assert abs(alert.value - used) < 1
    services.update_rule(owner, rule, {"threshold": min(100, math.ceil(used) + 1)})
    assert probe_disks().measured == ["local"]
    evaluate(timezone.now(), send=False)
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_the_swarm_driver_probes_through_the_managers_engine(probe_image):
    """The Swarm driver refuses container calls for stacks, not the probe; checked on the
    local engine (not in swarm mode here: the swarm cluster is another test run's)."""
    cluster = SwarmCluster(settings.BERTH_DOCKER_HOST, timeout=60)
    usage = cluster.data_root_usage()
    root = json.loads(docker("info", "--format", "{{json .DockerRootDir}}"))
    real = os.statvfs(root)
    assert usage.data_root == root and usage.total_bytes == real.f_blocks * real.f_frsize
