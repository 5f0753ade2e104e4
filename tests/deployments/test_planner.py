"""The pure planner with plain data: rules, waves, and idempotence (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.deployments.planner import (
    Create,
    DesiredService,
    DesiredStack,
    EnsureNetwork,
    EnsureVolume,
    ObservedContainer,
    Pull,
    Remove,
    Replace,
    Start,
    Stop,
    batches,
    plan,
    simulate,
)


def svc(name, replicas=1, hash="h1", deps=None, order="stop-first", image=None):
    return DesiredService(
        name=name,
        hash=hash,
        image=image or f"img/{name}",
        replicas=replicas,
        depends_on=deps or {},
        update_order=order,
    )


def stack(*services, state="running", volumes=()):
    return DesiredStack({s.name: s for s in services}, state=state, network="net", volumes=volumes)


def box(id, service, replica=1, hash="h1", state="running", health="", created=1.0, **kw):
    return ObservedContainer(
        id=id,
        service=service,
        replica=replica,
        hash=hash,
        state=state,
        health=health,
        created=created,
        **kw,
    )


def flat(waves):
    return [a for w in waves for a in w.actions]


def test_fresh_deploy_prepares_then_starts_by_dependency_level():
    desired = stack(
        svc("db"),
        svc("cache"),
        svc("api", deps={"db": "service_healthy", "cache": "service_started"}),
        svc("web", replicas=2, deps={"api": "service_started"}),
        volumes=("v1",),
    )
    waves = plan(desired, [])
    prep, level0, level1, level2 = waves
    assert prep.actions[:2] == (EnsureNetwork(name="net"), EnsureVolume(name="v1"))
    assert {a.image for a in prep.actions if isinstance(a, Pull)} == {
        "img/db",
        "img/cache",
        "img/api",
        "img/web",
    }
    assert level0.actions == (Create(service="cache", replica=1), Create(service="db", replica=1))
    assert level0.wait_for == {}
    assert level1.actions == (Create(service="api", replica=1),)
    assert level1.wait_for == {"db": "service_healthy"}
    assert level2.actions == (Create(service="web", replica=1), Create(service="web", replica=2))
    assert level2.wait_for == {}
    assert plan(desired, simulate([], waves, desired)) == []


def test_converged_stack_gives_nothing_and_no_pulls():
    desired = stack(svc("web", replicas=2))
    observed = [box("a", "web", 1), box("b", "web", 2)]
    assert plan(desired, observed) == []


def test_scale_down_removes_highest_replicas_only():
    desired = stack(svc("web", replicas=1))
    observed = [box("a", "web", 1), box("b", "web", 2), box("c", "web", 3)]
    assert flat(plan(desired, observed)) == [
        Remove(service="web", id="c"),
        Remove(service="web", id="b"),
    ]


def test_exited_container_is_started_unless_user_stopped():
    desired = stack(svc("web", replicas=2))
    observed = [
        box("a", "web", 1, state="exited"),
        box("b", "web", 2, state="exited", user_stopped=True),
    ]
    assert flat(plan(desired, observed)) == [Start(service="web", id="a")]


def test_changed_hash_is_replaced_with_the_service_order():
    desired = stack(svc("web", replicas=2, hash="h2", order="start-first"))
    observed = [box("a", "web", 1), box("b", "web", 2)]
    actions = flat(plan(desired, observed))
    assert isinstance(actions[-1], Replace) and actions[-1].order == "start-first"
    assert [a.old_id for a in actions if isinstance(a, Replace)] == ["a", "b"]
    assert Pull(image="img/web") in actions


def test_duplicates_keep_the_best_and_remove_the_rest():
    desired = stack(svc("web", hash="h2"))
    observed = [
        box("old", "web", 1, hash="h1", created=5),
        box("new-sick", "web", 1, hash="h2", health="unhealthy", created=4),
        box("new-ok", "web", 1, hash="h2", health="healthy", created=3),
        box("new-dead", "web", 1, hash="h2", state="exited", created=6),
    ]
    actions = flat(plan(desired, observed))
    assert set(actions) == {Remove(service="web", id=i) for i in ("old", "new-sick", "new-dead")}


def test_services_gone_from_the_spec_are_removed_first():
    desired = stack(svc("web"))
    observed = [box("a", "web"), box("z", "legacy")]
    waves = plan(desired, observed)
    assert waves[0].actions == (Remove(service="legacy", id="z"),)


def test_stopped_stops_active_containers_dependents_first():
    desired = stack(svc("db"), svc("web", deps={"db": "service_healthy"}), state="stopped")
    observed = [box("d", "db"), box("w", "web"), box("x", "web", 2, state="exited")]
    assert flat(plan(desired, observed)) == [
        Remove(service="web", id="x"),
        Stop(service="web", id="w"),
        Stop(service="db", id="d"),
    ]
    assert plan(desired, [box("d", "db", state="exited")]) == []


def test_removed_removes_everything():
    desired = stack(svc("db"), state="removed")
    observed = [box("d", "db"), box("e", "db", 2), box("z", "other")]
    assert {a.id for a in flat(plan(desired, observed))} == {"d", "e", "z"}
    assert plan(desired, []) == []


def test_dead_container_is_replaced():
    desired = stack(svc("web"))
    actions = flat(plan(desired, [box("a", "web", state="dead")]))
    assert Replace(service="web", replica=1, old_id="a", order="stop-first") in actions


def replaces_of(waves):
    return [a for a in flat(waves) if isinstance(a, Replace)]


def test_replaces_are_batched_by_batch_size_lowest_replica_first():
    desired = stack(svc("web", replicas=5, hash="h2"))
    observed = [box(f"c{i}", "web", i) for i in range(5, 0, -1)]
    replaces = replaces_of(plan(desired, observed))
    assert [[r.replica for r in batch] for batch in batches(replaces, 2)] == [[1, 2], [3, 4], [5]]
    assert [[r.replica for r in batch] for batch in batches(replaces, 1)] == [
        [1],
        [2],
        [3],
        [4],
        [5],
    ]
    # 0 (Compose's parallelism 0) and a batch as large as the service: all at once.
    assert len(batches(replaces, 0)) == 1 and len(batches(replaces, 0)[0]) == 5
    assert len(batches(replaces, 9)) == 1
    assert batches([], 2) == []


def test_a_replace_interrupted_half_way_waits_for_its_new_container():
    """A crash after the new container of replica 1 started, before it was healthy: the
    old one keeps serving and the next pass waits for the new one, creating nothing."""
    desired = stack(svc("web", replicas=2, hash="h2", order="start-first"))
    observed = [
        box("old1", "web", 1, hash="h1", health="healthy", created=1),
        box("new1", "web", 1, hash="h2", health="starting", created=5),
        box("old2", "web", 2, hash="h1", health="healthy", created=1),
    ]
    actions = flat(plan(desired, observed))
    assert (
        Replace(service="web", replica=1, old_id="old1", order="start-first", adopt="new1")
        in actions
    )
    assert Remove(service="web", id="old1") not in actions
    assert Replace(service="web", replica=2, old_id="old2", order="start-first") in actions
    after = simulate(observed, plan(desired, observed), desired)
    assert sorted(c.replica for c in after) == [1, 2] and plan(desired, after) == []


def test_a_healthy_new_container_beside_an_old_one_removes_the_old_one():
    """A canary being promoted, or a replace interrupted after the new container became
    healthy: the old container goes (the reconciler drains it first)."""
    desired = stack(svc("web", replicas=1, hash="h2"))
    observed = [
        box("old", "web", 1, hash="h1", health="healthy", created=1),
        box("new", "web", 1, hash="h2", health="healthy", created=5),
    ]
    assert flat(plan(desired, observed)) == [Remove(service="web", id="old")]


NAMES = ["a", "b", "c", "d"]


@st.composite
def scenarios(draw):
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    services = []
    for i, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        services.append(
            svc(
                name,
                replicas=draw(st.integers(0, 3)),
                hash=draw(st.sampled_from(["h1", "h2"])),
                deps={
                    d: draw(st.sampled_from(["service_started", "service_healthy"])) for d in deps
                },
                order=draw(st.sampled_from(["start-first", "stop-first"])),
            )
        )
    desired = stack(
        *services, state=draw(st.sampled_from(["running", "stopped", "removed"])), volumes=("v",)
    )
    observed = draw(
        st.lists(
            st.builds(
                ObservedContainer,
                id=st.uuids().map(str),
                service=st.sampled_from(NAMES + ["gone"]),
                replica=st.integers(0, 4),
                hash=st.sampled_from(["h1", "h2"]),
                state=st.sampled_from(
                    ["running", "exited", "created", "restarting", "dead", "paused"]
                ),
                health=st.sampled_from(["", "healthy", "unhealthy", "starting"]),
                created=st.floats(0, 100),
                user_stopped=st.booleans(),
            ),
            max_size=12,
        )
    )
    return desired, observed


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_then_plan_again_is_empty(scenario):
    desired, observed = scenario
    after = simulate(observed, plan(desired, observed), desired)
    assert plan(desired, after) == []
    slots = [(c.service, c.replica) for c in after]
    assert len(slots) == len(set(slots)), "no duplicates after converging"
    if desired.state == "removed":
        assert after == []
    for c in after:
        spec = desired.services[c.service]
        assert 1 <= c.replica <= spec.replicas


def test_a_replica_stopped_by_a_user_degrades_the_stack_instead_of_failing_it():
    from types import SimpleNamespace

    from apps.deployments.mirror import stack_state
    from apps.deployments.models import Service, Stack

    stack = SimpleNamespace(desired_state=Stack.Desired.RUNNING)
    health = {"worker": (Service.Health.STOPPED, "stopped by a user")}
    assert stack_state(stack, health, "")[0] == Stack.State.DEGRADED
    failing = {"worker": (Service.Health.FAILED, "exited with code 1")}
    assert stack_state(stack, failing, "")[0] == Stack.State.FAILED
