"""The event-driven host pass against the real engine (apps/deployments/listing.py):
after one full list a pass lists only the containers the engine's events named, and a
container killed, removed or rewired behind Berth's back is still seen and repaired."""

from __future__ import annotations

import time
import uuid

import pytest

from apps.deployments import listing, reconciler
from apps.deployments.models import Container, Stack
from apps.hosts.engine import get_engine
from apps.hosts.engine.changes import Changes
from apps.hosts.engine.streams import _close_response
from tests.fixtures.engine import docker, engine_containers, inspect, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

APP = """
services:
  api:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 0s
    deploy: {replicas: 2}
  web:
    image: ${IMAGE}
    command: ["sleep", "3600"]
    stop_grace_period: 0s
"""


@pytest.fixture
def feed_on(settings):
    settings.BERTH_RECONCILE_FULL_LIST_SECONDS = 300
    listing.forget()
    yield
    listing.forget()


def deployed(environment, image: str, name: str) -> Stack:
    stack = make_stack(environment, name, APP, {"IMAGE": image})
    reconciler.reconcile_stack(stack.pk)
    return stack


def wait_for_feed(host, container_id: str, timeout: float = 10.0) -> None:
    """Until the host's feed has read an event naming `container_id` (milliseconds,
    normally): a pass sees what the feed has read, like a list sees what is listed."""
    deadline = time.monotonic() + timeout
    while container_id not in listing.pending(host.pk):
        assert time.monotonic() < deadline, f"the feed never named {container_id[:12]}"
        time.sleep(0.02)


def running_slots(stack: Stack) -> list[tuple[str, str]]:
    labels = [
        c["Config"]["Labels"] for c in engine_containers(stack) if c["State"]["Status"] == "running"
    ]
    return sorted((lab["io.berth.service"], lab["io.berth.replica"]) for lab in labels)


def test_after_a_full_list_a_quiet_pass_asks_the_engine_nothing(feed_on, environment, image, host):
    stack = deployed(environment, image, "quiet")
    first = reconciler.reconcile_host(host.pk)
    assert first["full_list"] == 1

    second = reconciler.reconcile_host(host.pk)
    third = reconciler.reconcile_host(host.pk)

    assert second["full_list"] == 0 and third["full_list"] == 0, (second, third)
    assert third["api_calls"] == 0 and third["relisted"] == 0, third
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    assert Container.objects.filter(stack=stack, state="running").count() == 3


def test_a_killed_container_is_restored_by_an_event_driven_pass(feed_on, environment, image, host):
    stack = deployed(environment, image, "killed")
    reconciler.reconcile_host(host.pk)
    victim = next(
        c for c in engine_containers(stack) if c["Config"]["Labels"]["io.berth.service"] == "api"
    )
    docker("kill", victim["Id"])
    wait_for_feed(host, victim["Id"])

    counters = reconciler.reconcile_host(host.pk)

    assert counters["full_list"] == 0 and counters["relisted"] >= 1, counters
    assert running_slots(stack) == [("api", "1"), ("api", "2"), ("web", "1")]
    assert Stack.objects.get(pk=stack.pk).state == Stack.State.HEALTHY
    # What the repair itself did (start, or remove and create) reaches the next pass too.
    quiet = reconciler.reconcile_host(host.pk)
    assert quiet["full_list"] == 0
    rows = Container.objects.filter(stack=stack)
    assert sorted(rows.values_list("state", flat=True)) == ["running"] * 3


def test_a_container_removed_behind_berths_back_is_recreated(feed_on, environment, image, host):
    stack = deployed(environment, image, "removed")
    reconciler.reconcile_host(host.pk)
    victim = next(
        c for c in engine_containers(stack) if c["Config"]["Labels"]["io.berth.service"] == "web"
    )
    docker("rm", "-f", victim["Id"])
    wait_for_feed(host, victim["Id"])

    counters = reconciler.reconcile_host(host.pk)

    assert counters["full_list"] == 0, counters
    assert running_slots(stack) == [("api", "1"), ("api", "2"), ("web", "1")]
    assert not Container.objects.filter(engine_id=victim["Id"]).exists()


def test_a_network_change_of_a_known_container_is_relisted(feed_on, environment, image, host):
    stack = deployed(environment, image, "rewired")
    reconciler.reconcile_host(host.pk)
    network = f"berth-test-listing-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--label", f"io.berth.tenant={stack.tenant.slug}", network)
    target = engine_containers(stack)[0]["Id"]
    try:
        docker("network", "connect", network, target)
        wait_for_feed(host, target)
        counters = reconciler.reconcile_host(host.pk)
        assert counters["full_list"] == 0 and counters["relisted"] >= 1, counters
        seen = listing.current(host, get_engine(host)).containers
        addresses = next(c.addresses for c in seen if c.id == target)
        assert network in addresses, addresses
    finally:
        docker("network", "disconnect", "-f", network, target, check=False)
        docker("network", "rm", network, check=False)


def test_another_installations_containers_are_not_named(feed_on, environment, image, host):
    deployed(environment, image, "mine")
    reconciler.reconcile_host(host.pk)
    name = f"berth-test-foreign-{uuid.uuid4().hex[:8]}"
    foreign = docker(
        "run", "-d", "--name", name,
        "--label", "io.berth.managed=true",
        "--label", "io.berth.installation=someone-else",
        "--label", f"io.berth.tenant={environment.tenant.slug}",
        image, "sleep", "60",
    ).strip()  # fmt: skip
    try:
        docker("kill", foreign)
        # Our own event after the foreign ones: once it is read, theirs were too.
        mine = engine_containers(Stack.objects.get(name="mine"))[0]["Id"]
        docker("kill", mine)
        wait_for_feed(host, mine)
        # The foreign container's network events name it too; only known ids are relisted.
        counters = reconciler.reconcile_host(host.pk)
        assert counters["full_list"] == 0 and counters["relisted"] == 1, counters
        assert foreign not in listing._kept[host.pk].containers
        assert inspect(foreign)["State"]["Status"] == "exited"  # neither adopted nor repaired
    finally:
        docker("rm", "-f", foreign, check=False)


def test_a_broken_feed_or_a_burst_makes_the_next_pass_list_everything(
    feed_on, environment, image, host, monkeypatch
):
    stack = deployed(environment, image, "burst")
    reconciler.reconcile_host(host.pk)
    listing.forget(host.pk)  # closes the feed: as if the engine restarted
    assert reconciler.reconcile_host(host.pk)["full_list"] == 1

    monkeypatch.setattr(listing, "FULL_LIST_BURST", 1)
    ids = [c["Id"] for c in engine_containers(stack)][:2]
    docker("kill", *ids)
    for container_id in ids:
        wait_for_feed(host, container_id)
    counters = reconciler.reconcile_host(host.pk)
    assert counters["full_list"] == 1, counters
    assert running_slots(stack) == [("api", "1"), ("api", "2"), ("web", "1")]


def test_everything_is_listed_again_after_the_full_list_interval(
    feed_on, settings, environment, image, host
):
    deployed(environment, image, "interval")
    settings.BERTH_RECONCILE_FULL_LIST_SECONDS = 0.5
    assert reconciler.reconcile_host(host.pk)["full_list"] == 1
    assert reconciler.reconcile_host(host.pk)["full_list"] == 0
    time.sleep(0.6)
    assert reconciler.reconcile_host(host.pk)["full_list"] == 1


def test_a_dropped_feed_connection_makes_the_next_pass_list_everything(
    feed_on, environment, image, host
):
    deployed(environment, image, "drop")
    reconciler.reconcile_host(host.pk)
    kept = listing._kept[host.pk]
    _close_response(kept.feed._response)  # the stream ends, as when the engine restarts
    deadline = time.monotonic() + 10
    while not kept.feed.broken:
        assert time.monotonic() < deadline, "the feed did not notice its stream ended"
        time.sleep(0.02)
    assert kept.feed.take() is None

    counters = reconciler.reconcile_host(host.pk)

    assert counters["full_list"] == 1, counters
    assert not listing._kept[host.pk].feed.broken  # a new feed, opened before the list


def test_changes_name_rewired_containers_only_when_known():
    changes = Changes(frozenset({"a"}), frozenset({"b", "c"}))
    assert changes.ids({"b": object()}) == {"a", "b"}
    assert changes.ids({}) == {"a"}


def test_nothing_is_kept_when_every_pass_lists_everything(environment, image, host):
    """The suite's default (0): no feed, no listing kept, a full list on every pass."""
    deployed(environment, image, "off")
    assert reconciler.reconcile_host(host.pk)["full_list"] == 1
    assert reconciler.reconcile_host(host.pk)["full_list"] == 1
    assert host.pk not in listing._kept
    assert inspect(engine_containers(Stack.objects.get(name="off"))[0]["Id"])["State"]["Running"]
