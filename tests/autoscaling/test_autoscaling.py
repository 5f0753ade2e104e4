"""Autoscaling settings, decisions and refusals through the service layer, the API and
the service's page (real PostgreSQL; metrics written as the collector writes them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services as token_services
from apps.activity.models import Event
from apps.autoscaling import services as autoscaling
from apps.autoscaling.models import Autoscaler
from apps.deployments import routes
from apps.deployments import services as deployments
from apps.deployments.models import Service, Stack
from apps.monitoring.models import ContainerSample, RouteSample, Series
from apps.tenants import services as tenant_services
from tests.conftest import login

pytestmark = pytest.mark.django_db

LIMITED = """
services:
  web:
    image: berth-demo/web:1.0
    cpus: 0.5
    mem_limit: 64m
  plain:
    image: berth-demo/web:1.0
"""
GOOD = {
    "min_replicas": 1,
    "max_replicas": 4,
    "metric": "cpu",
    "target": 50,
    "cooldown_seconds": 60,
    "step": 2,
}


@pytest.fixture
def stack(member, env_a):
    return deployments.create_stack(member, env_a, "shop", compose=LIMITED)


@pytest.fixture
def web(stack):
    return stack.services.get(name="web")


def api(user) -> APIClient:
    _, raw = token_services.create_token(actor=user, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def errors(values, service) -> dict:
    with pytest.raises(ValidationError) as exc:
        autoscaling.configure(service.stack.created_by, service, {**GOOD, **values})
    return exc.value.message_dict


def idle(stack: Stack) -> None:
    """The reconciler's part, as it ends: no operation in progress."""
    Stack.objects.filter(pk=stack.pk).update(operation="")


def metered(service: Service, cpu_percents: list[float], *, seconds_ago: int = 30) -> None:
    """Container rows of `service` as the collector writes them: one series per value,
    a sample every 10 s over the last `seconds_ago` seconds."""
    now = timezone.now().replace(microsecond=0)
    for index, percent in enumerate(cpu_percents):
        series = Series.objects.create(
            kind=Series.Kind.CONTAINER,
            key=f"c0:{service.pk}-{index}",
            tenant=service.stack.tenant,
            stack_pk=service.stack_id,
            service_name=service.name,
            first_seen_at=now - timedelta(seconds=seconds_ago),
            last_seen_at=now,
        )
        for back in range(0, seconds_ago, 10):
            ContainerSample.objects.create(
                series=series,
                tier=0,
                at=now - timedelta(seconds=back),
                cpu_percent=percent,
                memory_bytes=32 * 1024 * 1024,
                memory_limit_bytes=64 * 1024 * 1024,
            )


# --- settings ----------------------------------------------------------------------------


def test_settings_are_checked_field_by_field(web, stack):
    assert errors({"min_replicas": 3, "max_replicas": 2}, web) == {
        "max_replicas": ["The maximum must be at least the minimum."]
    }
    assert "min_replicas" in errors({"min_replicas": 0}, web)
    assert "max_replicas" in errors({"max_replicas": 51}, web)
    assert "target" in errors({"target": 0}, web)
    assert "target" in errors({"target": 150}, web)
    assert "step" in errors({"step": 0}, web)
    assert "cooldown_seconds" in errors({"cooldown_seconds": -1}, web)
    plain = stack.services.get(name="plain")
    assert "CPU limit" in errors({}, plain)["metric"][0]
    # The environment's default memory limit counts: a memory target is fine here.
    assert "metric" not in errors({"metric": "memory", "min_replicas": 0}, plain)
    assert "no route leads to web" in errors({"metric": "requests", "target": 5}, web)["metric"][0]
    assert not Autoscaler.objects.exists()


def test_turning_off_is_possible_once_the_target_cannot_be_measured(web, member):
    scaler = autoscaling.configure(member, web, GOOD)
    idle(web.stack)
    metered(web, [45.0])
    spec = web.stack.current_revision.spec
    del spec["project"]["services"]["web"]["cpus"]  # a redeploy without the CPU limit
    web.stack.current_revision.save()
    decision = autoscaling.evaluate(scaler.pk)
    assert decision.action == "hold" and "has none" in decision.reason
    assert autoscaling.configure(member, web, {"enabled": False}).enabled is False


def test_a_maximum_over_the_tenants_quota_is_refused_when_set(web, superuser):
    tenant_services.set_quotas(actor=superuser, tenant=web.stack.tenant, values={"containers": 4})
    message = errors({"max_replicas": 4}, web)["max_replicas"][0]
    assert message.startswith("4 replicas would be refused: ") and "quota" in message
    assert autoscaling.configure(web.stack.created_by, web, {**GOOD, "max_replicas": 3})


def test_viewers_cannot_set_autoscaling_and_members_can_with_an_event(web, viewer, member):
    with pytest.raises(PermissionDenied):
        autoscaling.configure(viewer, web, GOOD)
    scaler = autoscaling.configure(member, web, GOOD)
    assert (scaler.tenant, scaler.enabled, scaler.describe()) == (
        web.stack.tenant,
        True,
        "1-4 replicas, CPU 50%",
    )
    event = Event.objects.get(action="autoscaling.configure")
    assert event.message == (
        "Turned autoscaling of web on: 1-4 replicas, CPU 50%, step 2, cooldown 60 s"
    )
    autoscaling.configure(member, web, {"enabled": False})
    assert Autoscaler.objects.get().enabled is False  # the settings are kept
    assert Event.objects.filter(action="autoscaling.configure").first().message == (
        "Turned autoscaling of web off"
    )


def test_a_persons_scale_is_refused_while_autoscaling_manages_the_service(web, member):
    autoscaling.configure(member, web, GOOD)
    response = api(member).post(f"/api/v1/services/{web.pk}/scale/", {"replicas": 3})
    assert response.status_code == 400
    (message,) = response.json()["replicas"]
    assert message.startswith("Autoscaling manages web (1-4 replicas, CPU 50%)")
    autoscaling.configure(member, web, {"enabled": False})
    assert deployments.scale(member, web, 3).scale == 3


# --- decisions ---------------------------------------------------------------------------


def test_high_cpu_scales_out_through_the_manual_scale_path(web, member):
    scaler = autoscaling.configure(member, web, GOOD)
    idle(web.stack)
    metered(web, [40.0])  # 40 % of one CPU = 80 % of the 0.5 CPU limit
    decision = autoscaling.evaluate(scaler.pk)
    assert (decision.action, decision.current, decision.desired) == ("out", 1, 2)
    assert decision.figures["observed"] == 80.0 and decision.figures["samples"] == 3
    web.refresh_from_db()
    stack = Stack.objects.get(pk=web.stack_id)
    assert web.scale == 2 and stack.current_revision.number == 2
    assert stack.current_revision.created_by is None and stack.operation == "scale"
    scale_event = Event.objects.get(action="stack.scale")
    assert scale_event.actor_name == "system"
    assert scale_event.message.startswith("Scaled web from 1 to 2 by autoscaling: 80.0 per")
    decided = Event.objects.get(action="autoscaling.scale_out")
    assert decided.data["observed"] == 80.0 and decided.data["desired"] == 2
    scaler.refresh_from_db()
    assert scaler.last_scaled_at is not None and "above the target" in scaler.last_decision

    # While the reconciler works on it: a hold, no second scale.
    assert autoscaling.evaluate(scaler.pk).reason == "waiting for the scale in progress"
    idle(stack)
    # Done, but inside the cooldown, and the window starts at the last scale.
    assert autoscaling.evaluate(scaler.pk).action in ("hold", "none")
    assert Service.objects.get(pk=web.pk).scale == 2


def test_no_metrics_no_decision_and_a_stopped_stack_is_left_alone(web, member):
    scaler = autoscaling.configure(member, web, GOOD)
    idle(web.stack)
    assert autoscaling.evaluate(scaler.pk).reason == "no metrics in the window"
    metered(web, [45.0])
    Stack.objects.filter(pk=web.stack_id).update(desired_state=Stack.Desired.STOPPED)
    assert autoscaling.evaluate(scaler.pk).reason == "the stack is stopped"
    assert Service.objects.get(pk=web.pk).scale == 1
    assert not Event.objects.filter(action__startswith="autoscaling.scale").exists()


def test_a_refused_scale_is_recorded_once_not_raised(web, member, superuser):
    scaler = autoscaling.configure(member, web, GOOD)
    tenant_services.set_quotas(actor=superuser, tenant=web.stack.tenant, values={"containers": 2})
    idle(web.stack)
    metered(web, [50.0])  # 100 % of the limit: wants 2, the quota allows 1 + plain
    assert autoscaling.evaluate_all() == 0
    assert autoscaling.evaluate(scaler.pk).action == "refused"
    refused = Event.objects.filter(action="autoscaling.refused")
    assert refused.count() == 1 and refused.get().outcome == Event.Outcome.FAILURE
    assert "quota allows 2 containers" in refused.get().message
    scaler.refresh_from_db()
    assert "quota" in scaler.last_refusal and Service.objects.get(pk=web.pk).scale == 1


def test_low_cpu_scales_in_after_the_cooldown(web, member):
    autoscaling.configure(member, web, {**GOOD, "enabled": False})
    deployments.scale(member, web, 4)
    scaler = autoscaling.configure(member, web, {"enabled": True})
    scaler.last_scaled_at = timezone.now() - timedelta(seconds=61)
    scaler.save()
    idle(web.stack)
    metered(web, [2.0, 2.0, 2.0, 2.0])
    decision = autoscaling.evaluate(scaler.pk)
    assert (decision.action, decision.desired) == ("in", 2)  # the step bounds it
    assert Event.objects.filter(action="autoscaling.scale_in").exists()


def test_memory_is_each_containers_use_against_its_own_limit(web, member):
    scaler = autoscaling.configure(member, web, {**GOOD, "metric": "memory", "target": 40})
    idle(web.stack)
    metered(web, [1.0])  # 32 MB of 64 MB: 50 %
    decision = autoscaling.evaluate(scaler.pk)
    assert decision.figures["observed"] == 50.0 and (decision.action, decision.desired) == (
        "out",
        2,
    )


def test_requests_per_second_come_from_the_routes_counters(web, member):
    route = routes.create_route(member, web, hostname="shop.example.com", port=8080)
    scaler = autoscaling.configure(member, web, {**GOOD, "metric": "requests", "target": 5})
    idle(web.stack)
    now = timezone.now().replace(microsecond=0)
    series = Series.objects.create(
        kind=Series.Kind.ROUTE,
        key=f"r{route.pk}",
        tenant=web.stack.tenant,
        route_pk=route.pk,
        first_seen_at=now - timedelta(seconds=40),
        last_seen_at=now,
    )
    for index, back in enumerate((40, 30, 20, 10, 0)):  # 120 requests every 10 s: 12/s
        RouteSample.objects.create(
            series=series, tier=0, at=now - timedelta(seconds=back), requests=120 * index
        )
    decision = autoscaling.evaluate(scaler.pk)
    assert decision.figures["observed"] == 12.0 and decision.desired == 3  # step 2 of 3


def test_another_tenants_metrics_never_count(web, member, env_b):
    scaler = autoscaling.configure(member, web, GOOD)
    idle(web.stack)
    metered(web, [45.0])
    Series.objects.filter(kind=Series.Kind.CONTAINER).update(tenant=env_b.tenant)
    assert autoscaling.evaluate(scaler.pk).reason == "no metrics in the window"


# --- API and page ------------------------------------------------------------------------


def test_api_sets_reads_and_lists_with_fields_and_reasons(web, member, viewer, outsider):
    client = api(member)
    url = f"/api/v1/autoscaling/{web.pk}/"
    assert client.get(url).status_code == 404  # never set
    response = client.put(url, {**GOOD, "max_replicas": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {"max_replicas": ["Give a number from 1 to 50."]}
    response = client.put(url, {"shape": "round"}, format="json")
    assert response.status_code == 400 and response.json() == {"shape": ["Unknown field."]}
    response = client.put(url, {**GOOD, "metric": "requests"}, format="json")
    assert response.status_code == 400 and "no route" in response.json()["metric"][0]
    response = client.put(url, GOOD, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["service"] == web.pk and response.json()["enabled"] is True
    response = client.patch(url, {"target": 60}, format="json")
    assert response.status_code == 200 and response.json()["target"] == 60
    assert client.get(url).json()["max_replicas"] == 4
    assert [row["service"] for row in client.get("/api/v1/autoscaling/").json()["results"]] == [
        web.pk
    ]
    decisions = client.get(f"{url}decisions/").json()
    assert [d["action"] for d in decisions] == ["autoscaling.configure"] * 2
    assert api(viewer).patch(url, {"target": 10}, format="json").status_code == 403
    assert api(outsider).get(url).status_code == 404
    assert api(outsider).put(url, GOOD, format="json").status_code == 404
    assert api(outsider).get("/api/v1/autoscaling/").json()["results"] == []


def test_page_shows_settings_errors_and_decisions(client, member, viewer, web):
    url = f"/autoscaling/services/{web.pk}/"
    page = login(client, member).get(url)
    assert page.status_code == 200 and b"Autoscaling was never set" not in page.content
    bad = client.post(url, {**GOOD, "enabled": "on", "min_replicas": 5, "max_replicas": 2})
    assert bad.status_code == 200
    assert "The maximum must be at least the minimum." in bad.content.decode()
    done = client.post(url, {**GOOD, "enabled": "on"})
    assert done.status_code == 302
    page = client.get(url).content.decode()
    assert "Turned autoscaling of web on" in page and "data-autoscaling-state" in page
    refused = client.post(f"/stacks/services/{web.pk}/scale/", {"replicas": 3}, follow=True)
    assert "Autoscaling manages web" in refused.content.decode()
    assert Service.objects.get(pk=web.pk).scale == 1
    stack_page = client.get(f"/stacks/{web.stack_id}/").content.decode()
    assert "autoscaled: 1-4" in stack_page and f"/autoscaling/services/{web.pk}/" in stack_page
    viewer_page = login(client, viewer).get(url).content.decode()
    assert (
        "1-4 replicas, CPU 50%, step 2" in viewer_page
        and '<form method="post" novalidate' not in viewer_page
    )
    assert client.post(url, GOOD).status_code == 403


@pytest.mark.parametrize("metric", ["cpu", "memory"])
def test_a_judgement_reads_a_fixed_number_of_queries_whatever_the_replicas(
    web, member, metric, django_assert_num_queries
):
    """The beat judges every autoscaled service: its reads must grow with services,
    not with their containers (one series read per container did: 1,201 queries at
    100 services of 3 containers)."""
    at_minimum = {"metric": metric, "min_replicas": 2, "max_replicas": 10}  # no scale
    scaler = autoscaling.configure(member, web, {**GOOD, **at_minimum})
    idle(web.stack)
    Service.objects.filter(pk=web.pk).update(scale=2)
    metered(web, [20.0, 20.0])
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as two:
        assert autoscaling.evaluate(scaler.pk).action == "none"
    Series.objects.filter(kind=Series.Kind.CONTAINER).delete()
    Service.objects.filter(pk=web.pk).update(scale=8)
    Autoscaler.objects.filter(pk=scaler.pk).update(min_replicas=8)
    metered(web, [20.0] * 8)
    with django_assert_num_queries(len(two.captured_queries)):
        assert autoscaling.evaluate(scaler.pk).action == "none"
