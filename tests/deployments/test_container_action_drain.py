"""A person's stop, restart or remove of one container of a routed service drains it
first: the frontier stops sending it requests before the engine stops it."""

from __future__ import annotations

import threading

import pytest

from apps.deployments import tasks
from apps.deployments.models import Container
from apps.deployments.signals import frontier_changed
from tests.docker_cli import docker

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def _running(engine_id: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", engine_id) == "true"


@pytest.fixture
def told(frontier):
    """(reason, draining ids, whether each draining container still ran) per signal."""
    seen: list[tuple[str, list[str], list[bool]]] = []

    def record(sender, stack_id=None, reason="", **kwargs):
        ids = list(Container.objects.filter(draining=True).values_list("engine_id", flat=True))
        seen.append((reason, ids, [_running(i) for i in ids]))

    frontier_changed.connect(record, dispatch_uid="test.container_action_drain")
    yield seen
    frontier_changed.disconnect(dispatch_uid="test.container_action_drain")


@pytest.mark.parametrize("action", ["stop", "restart", "remove"])
def test_a_routed_container_leaves_the_frontier_before_the_engine_touches_it(
    action, frontier, routed_web, told
):
    web = routed_web(f"{action}.localhost")
    first = web.add_container("1.0")
    web.add_container("1.0")
    frontier_changed.send(sender=Container, stack_id=web.stack.pk, reason="test")
    failures: list[int] = []
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            status, _ = frontier.get(f"{action}.localhost")
            if status != 200:
                failures.append(status)

    loop = threading.Thread(target=client)
    loop.start()
    try:
        outcome, message = tasks._engine_action(first, action)
    finally:
        done.set()
        loop.join()

    assert outcome == "success", message
    drains = [(ids, running) for reason, ids, running in told if reason == "drain"]
    assert drains and drains[0] == ([first.engine_id], [True]), "out while still running"
    assert failures == []
    row = Container.objects.filter(pk=first.pk).first()
    if action == "restart":
        assert row.draining is False  # back once the reconcile sees it healthy


def test_an_unrouted_container_is_not_drained(environment, host, web_images, told):
    from apps.deployments.models import Service
    from tests.fixtures.engine import make_stack
    from tests.fixtures.frontier import COMPOSE

    stack = make_stack(environment, "plain", COMPOSE)
    service = Service.objects.create(stack=stack, name="web", image="berth-demo/web:1.0")
    engine_id = docker(
        "run", "-d", "--label", f"io.berth.tenant={environment.tenant.slug}", "berth-demo/web:1.0"
    )
    row = Container.objects.create(
        stack=stack, service=service, host=host, engine_id=engine_id, name="plain-web-1"
    )
    assert tasks._engine_action(row, "stop")[0] == "success"
    assert told == [] and not Container.objects.get(pk=row.pk).draining
