"""Two tenants on one real 3-node swarm (issue 14, cross-tenant): a tenant's service
cannot name another tenant's overlay, cannot reach another tenant's tasks (not by name,
not by overlay address), cannot be placed on a node reserved for another tenant, and
cannot ask to be placed there by Berth's reserved labels.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError

from apps.deployments import containers as naming
from apps.deployments import services
from apps.deployments import swarm_reconcile as sr
from apps.deployments.models import Stack
from apps.hosts.engine.swarm import SwarmCluster
from apps.hosts.models import Host
from tests.swarm.cluster import Cluster
from tests.swarm.test_swarm_stacks import converge, running, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.swarm, pytest.mark.django_db(transaction=True)]

WEB = """
services:
  web:
    image: {image}
    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 0, monitor: 1s}}
    stop_grace_period: 0s
"""


def _node_of(swarm: Cluster, engine: SwarmCluster, task):
    hostname = next(n.hostname for n in engine.list_nodes() if n.node_id == task.node_id)
    return next(n for n in swarm.nodes if n.hostname == hostname)


def _overlay_addresses(swarm: Cluster, engine: SwarmCluster, task) -> dict[str, str]:
    """Network name -> the task container's address on it (read on its node)."""
    node = _node_of(swarm, engine, task)
    found = json.loads(
        node.docker("inspect", task.container_id, "--format", "{{json .NetworkSettings.Networks}}")
    )
    return {name: net["IPAddress"] for name, net in found.items()}


@pytest.fixture
def env_b(tenant_b, swarm_host: Host, swarm: Cluster):
    env = tenant_b.environments.get(slug="dev")
    env.hosts.set([swarm_host])
    yield env
    label = f"label=io.berth.tenant-id={tenant_b.pk}"
    installation = f"label=io.berth.installation={django_settings.BERTH_INSTALLATION_ID}"
    manager = swarm.manager
    found = manager.docker("service", "ls", "-q", "--filter", label, "--filter", installation,
                           check=False).split()  # fmt: skip
    if found:
        manager.docker("service", "rm", *found, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the overlays, refused while tasks still detach
        networks = manager.docker("network", "ls", "-q", "--filter", label, "--filter",
                                  installation, check=False).split()  # fmt: skip
        if not networks:
            break
        manager.docker("network", "rm", *networks, check=False)
        time.sleep(0.5)
    for node in swarm.worker_nodes:
        manager.docker("node", "update", "--label-rm", sr.TENANT_NODE_LABEL, node.hostname,
                       check=False)  # fmt: skip


@pytest.mark.timeout(600)
def test_tenants_on_one_swarm_cannot_reach_join_or_share_reserved_nodes(
    swarm: Cluster,
    swarm_host: Host,
    engine: SwarmCluster,
    published: str,
    member,
    outsider,
    env_a,
    env_b,
    tenant_a,
):
    shop = converge(
        services.create_stack(
            member, env_a, "shop", compose=WEB.format(image=published, replicas=1)
        )
    )
    assert shop.state == Stack.State.HEALTHY, shop.state_reason
    [target] = running(engine, shop, "web")
    theirs = _overlay_addresses(swarm, engine, target)
    stack_overlay, env_overlay = naming.stack_network_name(shop), naming.network_name(shop)
    assert {stack_overlay, env_overlay} <= set(theirs)

    # Naming tenant A's overlays, or A's reserved nodes, is refused per field.
    for overlay in (stack_overlay, env_overlay):
        joining = (
            WEB.format(image=published, replicas=1)
            + f"    networks: [theirs]\nnetworks:\n  theirs: {{external: true, name: {overlay}}}\n"
        )
        with pytest.raises(ValidationError) as caught:
            services.create_stack(outsider, env_b, "join", compose=joining)
        assert any("networks" in m for m in caught.value.message_dict["compose"]), caught.value
    placing = WEB.format(image=published, replicas=1).replace(
        "      replicas: 1\n",
        f'      replicas: 1\n      placement: {{constraints: ["node.labels.'
        f'{sr.TENANT_NODE_LABEL}=={tenant_a.slug}"]}}\n',
    )
    assert "placement" in placing
    with pytest.raises(ValidationError) as caught:
        services.create_stack(outsider, env_b, "place", compose=placing)
    assert any("io.berth" in m for m in caught.value.message_dict["compose"]), caught.value

    # Tenant B's tasks: on none of A's overlays, and A's web unreachable by name or address.
    probe = converge(
        services.create_stack(
            outsider, env_b, "probe", compose=WEB.format(image=published, replicas=2)
        )
    )
    assert probe.state == Stack.State.HEALTHY, probe.state_reason
    tasks = running(engine, probe, "web")
    for task in tasks:
        assert not {stack_overlay, env_overlay} & set(_overlay_addresses(swarm, engine, task))
    node = _node_of(swarm, engine, tasks[0])
    for url in ("http://web.shop:8080/", *(f"http://{ip}:8080/" for ip in theirs.values())):
        fetch = f"timeout 2 wget -q -O - {url} && echo REACHED"
        out = node.docker("exec", tasks[0].container_id, "sh", "-c", fetch, check=False)
        assert "REACHED" not in out, (url, out)
    # The same probe from A's own environment reaches it (the check above can fail).
    [own] = running(engine, shop, "web")
    node = _node_of(swarm, engine, own)
    out = node.docker("exec", own.container_id, "sh", "-c",
                      "timeout 5 wget -q -O - http://web.shop:8080/ && echo REACHED")  # fmt: skip
    assert "REACHED" in out

    # A worker reserved for tenant A: B's tasks leave it, A's may stay.
    workers = sorted(
        (n for n in engine.list_nodes() if n.role == "worker"), key=lambda n: n.hostname
    )
    reserved = workers[0]
    swarm.manager.docker("node", "update", "--label-add",
                         f"{sr.TENANT_NODE_LABEL}={tenant_a.slug}", reserved.hostname)  # fmt: skip
    probe = converge(Stack.objects.get(pk=probe.pk))
    wait_for(
        "B's tasks off A's reserved worker",
        lambda: (lambda ts: len(ts) == 2 and reserved.node_id not in {t.node_id for t in ts})(
            running(engine, probe, "web")
        ),
        timeout=120,
    )
    [spec] = [s for s in engine.list_services({"stack": str(probe.pk)})]
    constraints = "{{json .Spec.TaskTemplate.Placement.Constraints}}"
    inspected = swarm.manager.docker("service", "inspect", spec.service_id, "--format", constraints)
    assert f"node.labels.{sr.TENANT_NODE_LABEL}!={tenant_a.slug}" in json.loads(inspected)
