"""A canary steered by people: the service functions (roles, states, weights) and
/api/v1/rollouts/ (tenant-filtered, 400 with a field, 403 for a viewer, 404 across
tenants). The engine side (the reconciler acting on them) is test_rollout_engine.py."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.activity.models import Event
from apps.deployments import rollout as rollouts
from apps.deployments.models import Revision, Rollout, Stack
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


@pytest.fixture
def canary(stack) -> Rollout:
    """r1 -> r2 of `web`, a canary at 10 %."""
    first = stack.current_revision
    second = Revision.objects.create(stack=stack, number=2, spec=copy.deepcopy(first.spec))
    Stack.objects.filter(pk=stack.pk).update(current_revision=second)
    return Rollout.objects.create(
        stack=stack,
        service="web",
        strategy=Rollout.Strategy.CANARY,
        state=Rollout.State.CANARY,
        from_revision=1,
        to_revision=2,
        canary_weight=10,
    )


def test_a_member_sets_the_weight_and_it_is_recorded(member, canary):
    changed = rollouts.set_canary_weight(member, canary, 20)
    assert Rollout.objects.get(pk=canary.pk).canary_weight == changed.canary_weight == 20
    event = Event.objects.get(action="rollout.weight")
    assert "from 10% to 20%" in event.message and event.actor == member


@pytest.mark.parametrize("weight", [0, 100, -5, "ten", None, True, 20.5])
def test_a_weight_outside_1_to_99_is_refused(member, canary, weight):
    with pytest.raises(ValidationError) as exc:
        rollouts.set_canary_weight(member, canary, weight)
    assert set(exc.value.message_dict) == {"weight"}
    assert Rollout.objects.get(pk=canary.pk).canary_weight == 10


def test_a_viewer_cannot_steer_a_canary(viewer, canary):
    for act in (
        lambda: rollouts.set_canary_weight(viewer, canary, 30),
        lambda: rollouts.promote(viewer, canary),
        lambda: rollouts.abort(viewer, canary),
    ):
        with pytest.raises(PermissionDenied):
            act()
    assert Rollout.objects.get(pk=canary.pk).state == Rollout.State.CANARY


def test_promote_hands_the_rest_to_the_reconciler(member, canary, stack):
    promoted = rollouts.promote(member, canary)
    assert promoted.state == Rollout.State.PROMOTING
    stack = Stack.objects.get(pk=stack.pk)
    assert stack.operation == "promote" and stack.current_revision.number == 2
    with pytest.raises(ValidationError):
        rollouts.set_canary_weight(member, promoted, 50)  # no longer a canary


def test_abort_puts_the_stack_back_on_the_revision_it_came_from(member, canary, stack):
    aborted = rollouts.abort(member, canary)
    assert aborted.state == Rollout.State.ABORTING
    stack = Stack.objects.get(pk=stack.pk)
    assert stack.current_revision.number == 1 and stack.operation == "abort"
    assert Event.objects.filter(action="rollout.abort", actor=member).exists()
    with pytest.raises(ValidationError):
        rollouts.promote(member, aborted)


def test_a_finished_rollout_cannot_be_steered(member, canary):
    Rollout.objects.filter(pk=canary.pk).update(state=Rollout.State.DONE)
    with pytest.raises(ValidationError) as exc:
        rollouts.abort(member, canary)
    assert "not a canary" in exc.value.message_dict["state"][0]


# --- the API ----------------------------------------------------------------------------------


def test_rollouts_are_listed_for_the_tenant_only(api_as, member, outsider, canary):
    mine = api_as(member)[0].get("/api/v1/rollouts/")
    assert mine.status_code == 200
    (row,) = results(mine)
    assert (row["id"], row["state"], row["canary_weight"]) == (canary.pk, "canary", 10)
    assert results(api_as(outsider)[0].get("/api/v1/rollouts/")) == []
    assert api_as(outsider)[0].get(f"/api/v1/rollouts/{canary.pk}/").status_code == 404
    assert api_as(outsider)[0].post(f"/api/v1/rollouts/{canary.pk}/promote/").status_code == 404
    filtered = api_as(member)[0].get("/api/v1/rollouts/", {"state": "done"})
    assert results(filtered) == []


def test_weight_promote_and_abort_over_the_api(api_as, member, viewer, canary):
    api = api_as(member)[0]
    url = f"/api/v1/rollouts/{canary.pk}/"
    response = api.post(f"{url}weight/", {"weight": 20}, format="json")
    assert response.status_code == 200 and response.json()["canary_weight"] == 20
    bad = api.post(f"{url}weight/", {"weight": 150}, format="json")
    assert bad.status_code == 400 and "weight" in bad.json()
    unknown = api.post(f"{url}weight/", {"weight": 20, "state": "done"}, format="json")
    assert unknown.status_code == 400
    assert api_as(viewer)[0].post(f"{url}promote/").status_code == 403
    assert api.post(f"{url}promote/").json()["state"] == "promoting"
    assert api.post(f"{url}abort/").json()["state"] == "aborting"
    assert api.post(f"{url}promote/").status_code == 400
