"""Stacks on a Swarm cluster without a swarm (issue 14, slice 3): what the service layer
refuses on an environment targeting a swarm (per field, at create and edit), the
mapping of a Compose service to a SwarmServiceRequest, tenant reservations of nodes,
and the environment admin's rules. The real deployment is tests/swarm/test_swarm_stacks.py.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.deployments import reconciler, services, swarm_reconcile
from apps.deployments.models import Stack
from apps.deployments.spec import project_from_spec
from apps.hosts import services as host_services
from apps.hosts.engine.swarm import SwarmNodeInfo, SwarmTaskInfo
from apps.hosts.models import Host
from apps.tenants.admin import EnvironmentAdminForm

pytestmark = pytest.mark.django_db

GOOD = """
services:
  web:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
    command: ["serve", "--port", "8080"]
    environment: {MESSAGE: hi}
    deploy:
      replicas: 3
      placement:
        constraints: ["node.role==worker"]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      resources:
        limits: {memory: 64M, cpus: "0.25"}
        reservations: {memory: 8M}
      update_config: {parallelism: 2, order: start-first}
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 2s
    restart: on-failure:3
    stop_grace_period: 1s
  client:
    image: ${BERTH_REGISTRY}/berth-demo/web:1.0
    depends_on: [web]
"""

PLAIN = "services:\n  web:\n    image: berth-demo/web:1.0\n"


@pytest.fixture
def swarm(db) -> Host:
    return host_services.register_host(
        actor=None, name="cluster", endpoint="tcp://10.0.0.2:2376", kind="swarm"
    )


def _messages(exc: pytest.ExceptionInfo) -> list[str]:
    return exc.value.message_dict["compose"]


def test_the_subset_is_accepted_and_mapped(member, env_a, swarm):
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=GOOD)
    spec = stack.current_revision.spec
    project = project_from_spec(spec)
    nodes = [
        SwarmNodeInfo("n1", "a", "worker", "active", "ready", "", labels={}),
        SwarmNodeInfo("n2", "b", "worker", "active", "ready", "", labels={"io.berth.tenant": "zz"}),
        SwarmNodeInfo(
            "n3", "c", "worker", "active", "ready", "",
            labels={"io.berth.tenant": stack.tenant.slug},
        ),
    ]  # fmt: skip
    web = swarm_reconcile.swarm_request(stack, spec, project, "web", nodes=nodes)
    assert web.name == f"berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}-web"
    assert web.replicas == 3 and web.command == ("serve", "--port", "8080")
    assert web.env == {"MESSAGE": "hi"}
    assert (web.memory, web.memory_reservation, web.nano_cpus) == (64 << 20, 8 << 20, 250_000_000)
    assert (web.restart_condition, web.restart_max_attempts) == ("on-failure", 3)
    assert web.healthcheck is not None and web.healthcheck.interval == 2
    # the user's constraint, then the other tenant's reserved node kept out
    assert web.constraints == ("node.role==worker", "node.labels.io.berth.tenant!=zz")
    assert (web.preferences, web.max_replicas_per_node) == (("node.labels.zone",), 2)
    assert (web.update.parallelism, web.update.order) == (2, "start-first")
    network, shared = web.networks
    assert network.name == f"berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}"
    assert network.aliases == ("web",)
    assert shared.name == f"berth-{settings.BERTH_INSTALLATION_ID}-e{stack.environment_id}"
    assert shared.aliases == ("web.shop",)
    assert web.labels["io.berth.stack"] == str(stack.pk)
    assert web.labels["io.berth.tenant"] == stack.tenant.slug
    assert web.labels["io.berth.service"] == "web" and web.stop_grace_period == 1
    client = swarm_reconcile.swarm_request(stack, spec, project, "client", nodes=[])
    assert client.constraints == () and client.replicas == 1
    # no `restart`: Swarm's default, so a drained or lost node's tasks are replaced
    assert client.restart_condition == "any"
    # stopped: every service at 0
    stack.desired_state = Stack.Desired.STOPPED
    assert swarm_reconcile.swarm_request(stack, spec, project, "web").replicas == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('    ports: ["8080:80"]\n', "services.web.ports"),
        ("    volumes: [/data]\n", "services.web.volumes"),
        ("    cap_drop: [ALL]\n", "services.web.cap_drop"),
        ("    depends_on: {db: {condition: service_completed_successfully}}\n  db:\n"
         "    image: ${BERTH_REGISTRY}/berth-demo/web:1.0\n", "services.web.depends_on.db"),
        ("    deploy: {placement: {constraints: [node.labels.io.berth.tenant==x]}}\n",
         "services.web.deploy.placement.constraints"),
    ],
)  # fmt: skip
def test_what_a_swarm_cannot_run_is_refused_by_field(member, env_a, swarm, extra, field):
    env_a.hosts.add(swarm)
    compose = "services:\n  web:\n    image: ${BERTH_REGISTRY}/berth-demo/web:1.0\n" + extra
    with pytest.raises(ValidationError) as caught:
        services.create_stack(member, env_a, "shop", compose=compose)
    assert any(m.startswith(field + ":") for m in _messages(caught)), _messages(caught)
    assert not Stack.objects.exists()


def test_ports_point_at_the_frontier_and_images_at_the_registry(member, env_a, swarm):
    env_a.hosts.add(swarm)
    compose = 'services:\n  web:\n    image: nginx:alpine\n    ports: ["8080:80"]\n'
    with pytest.raises(ValidationError) as caught:
        services.check_stack(member, env_a, "shop", compose=compose)
    ports, image = _messages(caught)
    assert "frontier" in ports and "services.web.image:" in image


def test_an_edit_is_checked_too(member, env_a, swarm):
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=GOOD)
    with pytest.raises(ValidationError) as caught:
        services.redeploy(
            member, stack, compose=GOOD.replace("    depends_on: [web]", '    ports: ["80:80"]')
        )
    assert any(m.startswith("services.client.ports:") for m in _messages(caught))


def test_the_same_compose_runs_on_an_engine(member, env_a):
    compose = 'services:\n  web:\n    image: nginx:alpine\n    ports: ["8080:80"]\n'
    assert services.create_stack(member, env_a, "shop", compose=compose).pk


def test_a_swarm_is_never_the_fallback_host(member, env_a, swarm):
    Host.objects.filter(pk=swarm.pk).update(state=Host.State.ACTIVE, name="local")
    stack = services.create_stack(member, env_a, "shop", compose=PLAIN)
    assert reconciler.target_host(stack) is None


def _form(env, hosts):
    data = {"tenant": env.tenant.pk, "slug": env.slug, "name": env.name, "hosts": hosts}
    return EnvironmentAdminForm(instance=env, data=data)


def test_the_environment_admin_takes_a_swarm_alone(env_a, swarm):
    host = Host.objects.create(name="engine", endpoint="tcp://10.0.0.3:2376")
    assert _form(env_a, [swarm.pk]).is_valid()
    form = _form(env_a, [swarm.pk, host.pk])
    assert not form.is_valid() and "only host" in form.errors["hosts"][0]


def test_stacks_are_not_moved_onto_a_swarm(member, env_a, swarm):
    services.create_stack(member, env_a, "shop", compose=PLAIN)
    form = _form(env_a, [swarm.pk])
    assert not form.is_valid() and "cannot be moved" in form.errors["hosts"][0]


def test_a_routed_port_is_published_for_the_frontier(member, env_a, swarm):
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=GOOD)
    spec = stack.current_revision.spec
    project = project_from_spec(spec)
    web = swarm_reconcile.swarm_request(stack, spec, project, "web", routed_ports=[8080, 8080, 81])
    assert [(p.target, p.published) for p in web.ports] == [(81, None), (8080, None)]
    assert swarm_reconcile.swarm_request(stack, spec, project, "client").ports == ()


def test_container_ports_are_published_and_healthy_dependencies_accepted(member, env_a, swarm):
    """`ports` without a host port publish on the task's node (as a route's port does);
    service_healthy is honoured at creation (tests/swarm/test_swarm_guestbook.py)."""
    env_a.hosts.add(swarm)
    compose = (
        "services:\n  web:\n    image: ${BERTH_REGISTRY}/berth-demo/web:1.0\n"
        '    ports: ["8080", "9000/udp"]\n    depends_on: {db: {condition: service_healthy}}\n'
        "  db:\n    image: ${BERTH_REGISTRY}/berth-demo/web:1.0\n"
    )
    stack = services.create_stack(member, env_a, "shop", compose=compose)
    spec = stack.current_revision.spec
    web = swarm_reconcile.swarm_request(
        stack, spec, project_from_spec(spec), "web", routed_ports=[8080, 81]
    )
    assert [(p.target, p.protocol, p.published) for p in web.ports] == [
        (81, "tcp", None),
        (8080, "tcp", None),
        (9000, "udp", None),
    ]


def test_a_canary_is_accepted_and_its_revision_is_no_part_of_the_spec(member, env_a, swarm):
    """A canary redeploy is accepted on a swarm; the revision a Swarm service was written
    from is a label outside its spec hash (a revision that leaves a service alone does not
    roll it), and a canary's Swarm service can never be named like a service's own."""
    from apps.hosts.engine.swarm_services import REVISION_LABEL, SPEC_HASH_LABEL, service_spec

    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=GOOD)
    spec = stack.current_revision.spec
    project = project_from_spec(spec)
    one, two = (
        service_spec(swarm_reconcile.swarm_request(stack, spec, project, "web", revision=n))
        for n in (1, 2)
    )
    assert one["Labels"][SPEC_HASH_LABEL] == two["Labels"][SPEC_HASH_LABEL]
    assert (one["Labels"][REVISION_LABEL], two["Labels"][REVISION_LABEL]) == ("1", "2")
    assert swarm_reconcile.canary_service_name(stack, "web") != swarm_reconcile.service_name(
        stack, "web"
    )
    lookalike = f"c{stack.pk}-web"  # a Compose service named like a canary's suffix
    assert swarm_reconcile.service_name(stack, lookalike) != swarm_reconcile.canary_service_name(
        stack, "web"
    )
    services.redeploy(member, stack, strategy="rolling")


VOLUMES = (
    GOOD.replace(
        "    stop_grace_period: 1s\n",
        "    stop_grace_period: 1s\n    volumes: [data:/data, {type: tmpfs, target: /scratch}]\n",
    )
    + "volumes:\n  data: {}\n"
)


def _node(node_id, hostname, *, state="ready", availability="active", role="worker", **labels):
    return SwarmNodeInfo(node_id, hostname, role, availability, state, "", labels=labels)


def test_a_named_volume_pins_its_services_to_one_node(member, env_a, swarm):
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=VOLUMES)
    spec = stack.current_revision.spec
    project = project_from_spec(spec)
    web = swarm_reconcile.swarm_request(stack, spec, project, "web", volume_node="n2")
    assert web.constraints[-1] == "node.id==n2"
    volume, scratch = web.mounts
    assert (volume.kind, volume.target, volume.source) == (
        "volume",
        "/data",
        f"berth-{settings.BERTH_INSTALLATION_ID}-s{stack.pk}-data",
    )
    assert volume.labels["io.berth.stack"] == str(stack.pk)
    assert (scratch.kind, scratch.target) == ("tmpfs", "/scratch")
    client = swarm_reconcile.swarm_request(stack, spec, project, "client", volume_node="n2")
    assert client.mounts == () and "node.id==n2" not in client.constraints

    nodes = [
        _node("n1", "a", role="manager"),  # web's constraint: workers only
        _node("n2", "b", availability="drain"),
        _node("n3", "c", **{"io.berth.tenant": "someone-else"}),
        _node("n4", "d"),
        _node("n5", "e"),
        _node("n6", "f", state="down"),
    ]
    busy = [SwarmTaskInfo("t1", "x", 1, "n4", "running", "running")]
    chosen = swarm_reconcile.choose_volume_node(stack, project, nodes, busy)
    assert chosen is not None and chosen.node_id == "n5"
    assert swarm_reconcile.choose_volume_node(stack, project, nodes[:3]) is None


def test_volumes_on_a_swarm_node_are_not_removed_blindly(member, owner, env_a, swarm):
    env_a.hosts.add(swarm)
    stack = services.create_stack(member, env_a, "shop", compose=VOLUMES)
    Stack.objects.filter(pk=stack.pk).update(swarm_volume_node="n5")
    stack.refresh_from_db()
    with pytest.raises(ValidationError) as caught:
        services.remove(owner, stack, volumes=True)
    assert "docker volume rm" in caught.value.message_dict["volumes"][0]
    assert services.remove(owner, stack).desired_state == Stack.Desired.REMOVED


def test_volumes_berth_does_not_make_are_refused_on_a_swarm():
    """(The platform policy refuses most of these first; an admin's exception would not
    make them work on a swarm.)"""
    from apps.compose.spec import ServiceSpec, VolumeMount, VolumeSpec

    problems = swarm_reconcile._volume_problems
    assert problems(VolumeSpec("data", external=True))[0].startswith("external")
    assert problems(VolumeSpec("data", name="shared"))[0].startswith("external")
    assert problems(VolumeSpec("data", driver="nfs", driver_opts={"o": "x"})) == [
        "driver 'nfs': only local volumes on a Swarm cluster.",
        "driver_opts: not available on a Swarm cluster.",
    ]
    assert problems(VolumeSpec("data", driver="local")) == []
    bind = ServiceSpec(name="web", image="x", volumes=(VolumeMount("bind", "/d", "/srv"),))
    assert swarm_reconcile.service_problems(bind)[0].startswith("volumes: /srv:/d: bind")
