"""Tenant isolation on the real engine: the engine itself is the judge.

Names of networks, containers and volumes cannot collide across tenants, stacks or
installations whatever slugs people choose; an object of the wanted name that someone
else owns is refused, never joined or mounted; `service:` references resolve to the
stack's own containers; two installations sharing an engine never touch each other's
objects; stacks deployed under the old names move to the new ones without losing data.
"""

from __future__ import annotations

import importlib
import time
import uuid

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.test import override_settings

from apps.deployments import containers as naming
from apps.deployments import reconciler
from apps.deployments.models import Stack
from apps.tenants import services as tenant_services
from tests.fixtures.engine import _cleanup, docker, engine_containers, inspect, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

WEB = """
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo ${WHO} > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
volumes:
  data: {}
"""

JOINED = """
services:
  db:
    image: ${IMAGE}
    command: ["sh", "-c", "echo mine > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    network_mode: "service:db"
    pid: "service:db"
    stop_grace_period: 1s
"""


@pytest.fixture
def colliding_environments(owner, outsider, host):
    """Two tenants whose slugs made the same names before: tenant `x` with environment
    `y-z` and tenant `x-y` with environment `z` were both `berth-x-y-z`."""
    base = f"c{uuid.uuid4().hex[:6]}"
    first = tenant_services.create_tenant(actor=owner, slug=base, name="Victim")
    second = tenant_services.create_tenant(actor=outsider, slug=f"{base}-y", name="Thief")
    victim_env = tenant_services.create_environment(
        actor=owner, tenant=first, slug="y-z", name="y-z"
    )
    thief_env = tenant_services.create_environment(
        actor=outsider, tenant=second, slug="z", name="z"
    )
    yield victim_env, thief_env
    _cleanup(first.slug)
    _cleanup(second.slug)


def networks_of(stack: Stack) -> set[str]:
    """Ids of every network any container of the stack is attached to."""
    found = set()
    for container in engine_containers(stack):
        for network in container["NetworkSettings"]["Networks"].values():
            found.add(network["NetworkID"])
    return found


def fresh(stack: Stack) -> Stack:
    return Stack.objects.get(pk=stack.pk)


def test_colliding_slugs_share_no_network_container_or_volume(colliding_environments, image):
    victim_env, thief_env = colliding_environments
    victim = make_stack(victim_env, "app", WEB, {"IMAGE": image, "WHO": "victim"})
    thief = make_stack(thief_env, "app", WEB, {"IMAGE": image, "WHO": "thief"})
    for stack in (victim, thief):
        reconciler.reconcile_stack(stack.pk)
        assert fresh(stack).state == Stack.State.HEALTHY, fresh(stack).state_reason

    assert networks_of(victim) and networks_of(thief)
    assert networks_of(victim).isdisjoint(networks_of(thief))
    (victim_web,) = engine_containers(victim)
    (thief_web,) = engine_containers(thief)
    assert victim_web["Name"] != thief_web["Name"]
    assert victim_web["Mounts"][0]["Name"] != thief_web["Mounts"][0]["Name"]
    # The thief reaches its own service by the environment's names and not the victim's
    # container at all: no network in common.
    fetch = ["exec", thief_web["Id"], "sh", "-c"]
    assert docker(*fetch, "sleep 1; wget -q -O- http://web.app/") == "thief"
    victim_ip = next(iter(victim_web["NetworkSettings"]["Networks"].values()))["IPAddress"]
    reached = docker(*fetch, f"timeout 3 wget -q -O- http://{victim_ip}/", check=False)
    assert reached == ""


def test_a_network_of_the_wanted_name_owned_by_someone_else_is_refused(environment, image):
    stack = make_stack(environment, "squat", WEB, {"IMAGE": image, "WHO": "me"})
    squatted = naming.stack_network_name(stack)
    other_tenant = {
        "io.berth.managed": "true",
        "io.berth.installation": settings.BERTH_INSTALLATION_ID,
        "io.berth.tenant": environment.tenant.slug,  # slugs prove nothing: ids decide
        "io.berth.tenant-id": "999999",
        "io.berth.stack": str(stack.pk),
    }
    args = [arg for key, value in other_tenant.items() for arg in ("--label", f"{key}={value}")]
    squatter = docker("network", "create", *args, squatted)
    try:
        reconciler.reconcile_stack(stack.pk)
        stack = fresh(stack)
        assert stack.state == Stack.State.FAILED
        assert f"The network name {squatted} is taken" in stack.state_reason
        assert "tenant-id label is '999999'" in stack.state_reason
        assert engine_containers(stack) == []
        assert inspect(squatter)["Containers"] in ({}, None)
    finally:
        docker("network", "rm", squatter, check=False)


def test_a_volume_of_the_wanted_name_owned_by_someone_else_is_never_mounted(environment, image):
    stack = make_stack(environment, "vol", WEB, {"IMAGE": image, "WHO": "me"})
    squatted = naming.volume_name(stack, "data")
    docker("volume", "create", "--label", "io.berth.test=squatter", squatted)
    try:
        reconciler.reconcile_stack(stack.pk)
        stack = fresh(stack)
        assert stack.state == Stack.State.FAILED
        assert f"The volume name {squatted} is taken" in stack.state_reason
        assert "not created by Berth" in stack.state_reason
        assert engine_containers(stack) == []
        # Removing the stack with its volumes leaves the foreign volume alone.
        Stack.objects.filter(pk=stack.pk).update(desired_state="removed", remove_volumes=True)
        reconciler.reconcile_stack(stack.pk)
        assert docker("volume", "inspect", "-f", "{{.Name}}", squatted) == squatted
    finally:
        docker("volume", "rm", "-f", squatted, check=False)


def test_service_references_join_the_stacks_own_container_not_a_namesake(environment, image):
    stack = make_stack(environment, "joined", JOINED, {"IMAGE": image})
    # Someone takes the name the stack's db container would get, before the deploy.
    decoy_name = naming.container_name(stack, "db", 1)
    decoy = docker("run", "-d", "--name", decoy_name, "--label", "io.berth.test=decoy", image)
    try:
        reconciler.reconcile_stack(stack.pk)
        stack = fresh(stack)
        assert stack.state == Stack.State.HEALTHY, stack.state_reason
        found = {c["Config"]["Labels"]["io.berth.service"]: c for c in engine_containers(stack)}
        db_id, web = found["db"]["Id"], found["web"]
        assert db_id != decoy
        assert web["HostConfig"]["NetworkMode"] == f"container:{db_id}"
        assert web["HostConfig"]["PidMode"] == f"container:{db_id}"
        assert docker("exec", web["Id"], "wget", "-q", "-O-", "http://127.0.0.1/") == "mine"
    finally:
        docker("rm", "-f", decoy, check=False)


def test_two_installations_on_one_engine_never_touch_each_others_objects(environment, image):
    """The same database ids (a benchmark beside a running portal): each installation
    creates, lists, repairs and removes only its own containers, networks and volumes."""
    stack = make_stack(environment, "twin", WEB, {"IMAGE": image, "WHO": "first"})
    reconciler.reconcile_stack(stack.pk)
    (first,) = engine_containers(stack)
    first_volume = first["Mounts"][0]["Name"]
    other = "o" + uuid.uuid4().hex[:8]
    with override_settings(BERTH_INSTALLATION_ID=other, BERTH_ORPHAN_GRACE_SECONDS=0):
        Stack.objects.filter(pk=stack.pk).update(operation="deploy")
        reconciler.reconcile_stack(stack.pk)
        mine = [c for c in engine_containers(stack) if c["Id"] != first["Id"]]
        assert len(mine) == 1
        assert mine[0]["Config"]["Labels"]["io.berth.installation"] == other
        assert mine[0]["Mounts"][0]["Name"] != first_volume
        time.sleep(1)
        from apps.hosts.models import Host

        reconciler.reconcile_host(Host.objects.get(name="local").pk)  # orphans: grace 0
        Stack.objects.filter(pk=stack.pk).update(desired_state="removed", remove_volumes=True)
        reconciler.reconcile_stack(stack.pk)
    # The first installation's container, volume and networks are all still there.
    assert inspect(first["Id"])["State"]["Running"]
    assert docker("volume", "inspect", "-f", "{{.Name}}", first_volume) == first_volume
    for network in first["NetworkSettings"]["Networks"]:
        assert docker("network", "inspect", "-f", "{{.Name}}", network) == network
    assert [c["Id"] for c in engine_containers(stack)] == [first["Id"]]


def test_a_stack_from_before_installation_ids_moves_to_new_names_keeping_its_data(
    environment, image
):
    stack = make_stack(environment, "old", WEB, {"IMAGE": image, "WHO": "old"})
    old_volume = naming.legacy_volume_name(stack.pk, "data")
    legacy_labels = {
        "io.berth.managed": "true",
        "io.berth.tenant": stack.tenant.slug,
        "io.berth.environment": stack.environment.slug,
        "io.berth.stack": str(stack.pk),
    }
    label_args = [a for k, v in legacy_labels.items() for a in ("--label", f"{k}={v}")]
    docker("volume", "create", *label_args, old_volume)
    old_network = naming.legacy_stack_network_name(stack)
    docker("network", "create", *label_args, old_network)
    old_name = f"{stack.tenant.slug}-{stack.environment.slug}-old-web-1"
    container_labels = {**legacy_labels, "io.berth.service": "web", "io.berth.replica": "1"}
    old = docker(
        "run",
        "-d",
        "--name",
        old_name,
        "--network",
        old_network,
        "-v",
        f"{old_volume}:/data",
        *[a for k, v in container_labels.items() for a in ("--label", f"{k}={v}")],
        image,
        "sh",
        "-c",
        "echo precious > /data/file; exec sleep 3600",
    )
    # What migration 0002 does for every stack that exists when it runs.
    migration = importlib.import_module("apps.deployments.migrations.0002_legacy_engine_names")
    migration.mark_legacy_stacks(django_apps, None)
    stack = fresh(stack)
    assert stack.legacy_volumes == {"data": old_volume} and stack.legacy_containers
    try:
        reconciler.reconcile_stack(stack.pk)
        stack = fresh(stack)
        assert stack.state == Stack.State.HEALTHY, stack.state_reason
        assert docker("ps", "-aq", "--filter", f"id={old}") == ""
        (new,) = engine_containers(stack)
        assert new["Name"] == "/" + naming.container_name(stack, "web", 1)
        assert new["Mounts"][0]["Name"] == old_volume
        assert docker("exec", new["Id"], "cat", "/data/file") == "precious"
        assert not stack.legacy_containers
        assert docker("network", "ls", "-q", "--filter", f"name=^{old_network}$") == ""
    finally:
        docker("rm", "-f", old, check=False)
        docker("network", "rm", old_network, check=False)
        docker("volume", "rm", "-f", old_volume, check=False)
