"""spec["berth"]: berth.yml's routes, upgrade settings and health check, stored in each
Revision at render time; Compose deploy settings Berth cannot honour refused at deploy."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.catalog.models import Template
from apps.compose import load_compose
from apps.deployments import services
from apps.deployments.models import Stack
from apps.deployments.spec import berth_spec, upgrade_of, upgrade_settings
from tests.deployments.stack_fixtures import make_version

pytestmark = pytest.mark.django_db

COMPOSE = """
services:
  web:
    image: "berth-demo/web:1.0"
  api:
    image: "berth-demo/web:1.0"
"""

QUESTIONS = [
    {"variable": "DOMAIN", "label": "Hostname", "type": "hostname"},
    {"variable": "API_PATH", "label": "Path", "type": "string", "default": "/api"},
]

CONFIG = {
    "services": {
        "web": {
            "routes": [{"hostname": "${DOMAIN}", "path": "/", "port": 8080}],
            "upgrade": {
                "strategy": "canary",
                "batch_size": 2,
                "interval": "1m30s",
                "canary_weight": 20,
            },
            "health_check": {"http": {"port": 8080, "path": "/health"}},
        },
        "api": {"routes": [{"hostname": "${DOMAIN}", "path": "${API_PATH}", "port": 8080}]},
    }
}


@pytest.fixture
def version(db):
    template = Template.objects.create(
        slug="routed",
        name="Routed",
        category="web",
        visibility=Template.Visibility.PUBLIC,
        approval=Template.Approval.APPROVED,
    )
    return make_version(template, "1.0.0", COMPOSE, QUESTIONS, config=CONFIG)


def test_routes_are_interpolated_with_the_answers(owner, env_a, version):
    stack = services.create_stack(
        owner, env_a, "shop", template_version=version, answers={"DOMAIN": "Shop.Example.com"}
    )
    berth = stack.current_revision.spec["berth"]["services"]
    assert berth["web"]["routes"] == [{"hostname": "shop.example.com", "path": "/", "port": 8080}]
    assert berth["api"]["routes"] == [
        {"hostname": "shop.example.com", "path": "/api", "port": 8080}
    ]
    assert berth["web"]["health_check"] == {"http": {"port": 8080, "path": "/health"}}
    assert berth["api"]["health_check"] is None
    web = berth["web"]["upgrade"]
    assert (web["strategy"], web["batch_size"], web["interval"], web["canary_weight"]) == (
        "canary",
        2,
        90.0,
        20,
    )
    # A routed service rolls start-first unless the author says otherwise.
    assert (web["order"], web["order_set"], web["failure_action"]) == (
        "start-first",
        False,
        "rollback",
    )


def test_an_empty_hostname_drops_the_route_and_a_canary_becomes_rolling(owner, env_a, version):
    stack = services.create_stack(owner, env_a, "shop", template_version=version, answers={})
    berth = stack.current_revision.spec["berth"]["services"]
    assert berth["web"]["routes"] == [] and berth["api"]["routes"] == []
    assert berth["web"]["upgrade"]["strategy"] == "rolling"
    assert berth["web"]["upgrade"]["order"] == "stop-first"


def test_two_routes_on_one_hostname_and_path_after_interpolation_are_an_answer_error(
    owner, env_a, version
):
    with pytest.raises(ValidationError) as exc:
        services.create_stack(
            owner,
            env_a,
            "shop",
            template_version=version,
            answers={"DOMAIN": "shop.example.com", "API_PATH": "/"},
        )
    assert exc.value.message_dict == {
        "DOMAIN": ["the route for services.api uses the same hostname and path as services.web"]
    }


@pytest.mark.parametrize("path", ['/a"b', "/a;b", "/a b", "/a\\nb", "/api?x=1", "api"])
def test_an_answer_that_makes_a_path_the_frontier_cannot_serve_is_an_answer_error(
    owner, env_a, version, path
):
    """The same rule as the routes API (catalog.questions.route_path_problem)."""
    with pytest.raises(ValidationError) as exc:
        services.create_stack(
            owner,
            env_a,
            "shop",
            template_version=version,
            answers={"DOMAIN": "shop.example.com", "API_PATH": path},
        )
    (message,) = exc.value.message_dict["DOMAIN"]
    assert message.startswith("services.api.routes[0].path")


def test_raw_compose_gets_upgrade_settings_from_update_config_and_no_routes(owner, env_a):
    compose = """
services:
  web:
    image: berth-demo/web:1.0
    deploy:
      replicas: 4
      update_config: {parallelism: 0, delay: 5s, order: start-first, monitor: 20s,
                      failure_action: pause}
"""
    stack = services.create_stack(owner, env_a, "raw", compose=compose)
    web = stack.current_revision.spec["berth"]["services"]["web"]
    assert web["routes"] == [] and web["health_check"] is None
    upgrade = web["upgrade"]
    assert upgrade["batch_size"] == 0  # every container at once
    assert (upgrade["interval"], upgrade["monitor"]) == (5.0, 20.0)
    assert (upgrade["order"], upgrade["order_set"]) == ("start-first", True)
    assert upgrade["failure_action"] == "pause"


@pytest.mark.parametrize(
    ("deploy", "where", "words"),
    [
        (
            "placement: {constraints: [node.role==manager]}",
            "services.web.deploy.placement",
            "placement (constraints, preferences, max_replicas_per_node) needs a Swarm host",
        ),
        (
            "update_config: {failure_action: continue}",
            "services.web.deploy.update_config.failure_action",
            "continue is not supported",
        ),
        (
            "update_config: {max_failure_ratio: 0.5}",
            "services.web.deploy.update_config.max_failure_ratio",
            "first batch that does not become healthy",
        ),
    ],
)
def test_deploy_settings_berth_cannot_honour_are_refused(owner, env_a, deploy, where, words):
    compose = f"services:\n  web:\n    image: berth-demo/web:1.0\n    deploy:\n      {deploy}\n"
    with pytest.raises(ValidationError) as exc:
        services.create_stack(owner, env_a, "raw", compose=compose)
    (message,) = exc.value.message_dict["compose"]
    assert message.startswith(f"{where}: ") and words in message


def test_an_empty_placement_is_accepted(owner, env_a):
    compose = "services:\n  web:\n    image: berth-demo/web:1.0\n    deploy:\n      placement: {}\n"
    assert services.create_stack(owner, env_a, "raw", compose=compose).current_revision


def test_settings_without_berth_block_come_from_update_config():
    project = load_compose(
        "services:\n  web:\n    image: x:1\n    deploy:\n      update_config: {parallelism: 3}\n",
        {},
    )
    spec = {"project": {}}  # a revision stored before spec["berth"] existed
    assert upgrade_of(spec, project, "web")["batch_size"] == 3
    assert upgrade_of(spec, project, "web")["order"] == "stop-first"
    berth = berth_spec(project, None, {})
    assert berth["services"]["web"]["upgrade"] == upgrade_settings(
        None, project.services["web"], routed=False
    )


def test_berth_yml_order_monitor_and_failure_action():
    project = load_compose("services:\n  web:\n    image: x:1\n", {})
    raw = {"order": "stop-first", "monitor": "45s", "failure_action": "pause"}
    upgrade = upgrade_settings(raw, project.services["web"], routed=True)
    assert (upgrade["order"], upgrade["order_set"]) == ("stop-first", True)
    assert (upgrade["monitor"], upgrade["failure_action"]) == (45.0, "pause")


def test_a_redeploy_may_ask_for_a_canary_for_the_routed_services(owner, env_a, version):
    stack = services.create_stack(
        owner, env_a, "shop", template_version=version, answers={"DOMAIN": "shop.example.com"}
    )
    services.redeploy(owner, stack, {"API_PATH": "/v2"}, strategy="canary")
    berth = Stack.objects.get(pk=stack.pk).current_revision.spec["berth"]["services"]
    assert berth["web"]["upgrade"]["strategy"] == "canary"
    assert berth["api"]["upgrade"]["strategy"] == "canary"
    services.redeploy(owner, stack, {"API_PATH": "/v3"})  # the next change: berth.yml again
    berth = Stack.objects.get(pk=stack.pk).current_revision.spec["berth"]["services"]
    assert berth["api"]["upgrade"]["strategy"] == "rolling"


def test_a_canary_redeploy_without_a_route_is_refused(owner, env_a, api_as):
    stack = services.create_stack(owner, env_a, "raw", compose=COMPOSE)
    with pytest.raises(ValidationError) as exc:
        services.redeploy(owner, stack, strategy="canary")
    assert "needs a route" in exc.value.message_dict["strategy"][0]
    client = api_as(owner)[0]
    answer = client.post(f"/api/v1/stacks/{stack.pk}/redeploy/", {"strategy": "canary"}, "json")
    assert answer.status_code == 400 and "strategy" in answer.json()
    answer = client.post(f"/api/v1/stacks/{stack.pk}/redeploy/", {"strategy": "blue"}, "json")
    assert answer.status_code == 400 and "strategy" in answer.json()
