"""Orphans on the real 3-node swarm (issue 14): what a stack left on the swarm after
its row went from the database (deleted while the swarm was unreachable, say) is
removed by the periodic pass, as an engine's orphan containers are: its services, its
overlay network, its secrets and configs, once older than the grace period, with a
platform Event. Never another installation's look-alike (same stack and tenant labels,
another installation id), never anything without Berth's labels, never the
environment's overlay (other stacks use it).

The look-alikes are made with the docker CLI (no replicas: nothing to pull) and
removed by name afterwards.
"""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings

from apps.activity.models import Event
from apps.deployments import containers as naming
from apps.deployments import reconciler, secret_store, services
from apps.deployments.models import Stack
from apps.hosts.engine.labels import INSTALLATION_LABEL, MANAGED_LABEL
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster, Node
from tests.swarm.test_swarm_stacks import converge, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

COMPOSE = """
services:
  web:
    image: {image}
    stop_grace_period: 0s
    secrets: [db]
    configs:
      - {{source: site, target: /etc/site.conf}}
secrets:
  db: {{external: true, name: orphan_db}}
configs:
  site: {{external: true, name: orphan_site}}
"""


def everything_of(engine: SwarmCluster, stack_id: int) -> dict[str, list[str]]:
    """The names of what this installation holds for the stack id, by kind."""
    label = {"stack": str(stack_id)}
    return {
        "service": [s.name for s in engine.list_services(label)],
        "network": [n.name for n in engine.list_overlay_network_infos(label)],
        "secret": [o.name for o in engine.list_file_objects("secret", label)],
        "config": [o.name for o in engine.list_file_objects("config", label)],
    }


def names(node: Node, kind: str) -> set[str]:
    return set(node.docker(kind, "ls", "--format", "{{.Name}}").split())


def look_alikes(manager: Node, tmp_path, labels: dict[str, str]) -> dict[str, set[str]]:
    """A service, network and secret carrying `labels`, and a service with no Berth
    label but the stack's id: their names by kind."""
    made = f"alike-{uuid.uuid4().hex[:8]}"
    flags = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    image = "127.0.0.1:1/nothing:latest"  # never pulled: no replicas
    manager.docker("service", "create", "--detach", "--replicas", "0", "--no-resolve-image",
                   "--name", f"{made}-svc", *flags, image)  # fmt: skip
    manager.docker("service", "create", "--detach", "--replicas", "0", "--no-resolve-image",
                   "--name", f"{made}-bare", "--label",
                   f"{naming.STACK}={labels[naming.STACK]}", image)  # fmt: skip
    manager.docker("network", "create", "--driver", "overlay", *flags, f"{made}-net")
    value = tmp_path / "value"
    value.write_text("not Berth's")
    manager.docker("secret", "create", *flags, f"{made}-sec", str(value))
    return {
        "service": {f"{made}-svc", f"{made}-bare"},
        "network": {f"{made}-net"},
        "secret": {f"{made}-sec"},
    }


def remove(manager: Node, made: dict[str, set[str]]) -> None:
    for kind, found in made.items():
        manager.docker(kind, "rm", *sorted(found), check=False)


@pytest.mark.timeout(300)
def test_a_gone_stack_s_objects_are_removed_and_nothing_else(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    env_a,
    tmp_path,
):
    secret_store.create_entry(member, env_a, kind="secret", name="orphan_db", value="x")
    secret_store.create_entry(member, env_a, kind="config", name="orphan_site", value="y")
    stack = converge(
        services.create_stack(member, env_a, "left", compose=COMPOSE.format(image=published))
    )
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    before = everything_of(engine, stack.pk)
    assert all(len(found) == 1 for found in before.values()), before
    shared = naming.network_name(stack)
    other_installation = {
        MANAGED_LABEL: "true",
        INSTALLATION_LABEL: "someotherberth",
        naming.STACK: str(stack.pk),
        naming.TENANT_ID: str(stack.tenant_id),
    }
    alikes = look_alikes(swarm.manager, tmp_path, other_installation)
    try:
        # The row goes, the swarm keeps what the stack made.
        Stack.objects.filter(pk=stack.pk).delete()

        # Younger than the grace period: kept (a stack being created keeps its services).
        with override_settings(BERTH_ORPHAN_GRACE_SECONDS=3600):
            assert reconciler.reconcile_host(swarm_host.pk)["orphans"] == 0
        assert everything_of(engine, stack.pk) == before

        # Past it: services first, then the network, secret and config once free.
        removed: list[int] = []

        def swept() -> bool:
            removed.append(reconciler.reconcile_host(swarm_host.pk)["orphans"])
            return not any(everything_of(engine, stack.pk).values())

        with override_settings(BERTH_ORPHAN_GRACE_SECONDS=0):
            wait_for("the orphan stack's objects gone", swept, timeout=90)
        assert sum(removed) >= 4, removed  # a network may be counted again while it goes
        assert removed[0] >= 1  # the service (the rest as soon as its task has gone)

        # Nothing else was touched.
        for kind, found in alikes.items():
            assert found <= names(swarm.manager, kind), kind
        assert shared in names(swarm.manager, "network")
        events = Event.objects.filter(action="host.swarm.orphans_removed")
        swept_stacks = {e.data["orphan_stack"] for e in events}
        # (an earlier module's leftovers may be swept too: never a live stack's)
        assert stack.pk in swept_stacks and not Stack.objects.filter(pk__in=swept_stacks)
        events = events.filter(data__orphan_stack=stack.pk)
        told = " ".join(e.message for e in events)
        assert all(name in told for found in before.values() for name in found), told
        assert all(e.object_id == str(swarm_host.pk) and e.tenant_id is None for e in events)
    finally:
        remove(swarm.manager, alikes)
