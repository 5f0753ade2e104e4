"""The frontier's page for platform operators: last apply, last refused configuration,
each route's servers; nobody else may see it."""

from __future__ import annotations

import pytest

from apps.deployments.models import Route, Service, Stack
from apps.traffic import frontier
from tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_folder(settings, tmp_path):
    settings.BERTH_FRONTIER_DIR = tmp_path


def test_operator_sees_the_refused_configuration_and_why(client, superuser, settings):
    settings.BERTH_FRONTIER_EXTRA_GLOBAL = "no-such-directive on"
    assert not frontier.apply("an operator's typo").ok

    page = login(client, superuser).get("/traffic/frontier/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "The last configuration was refused" in html
    assert "no-such-directive" in html
    assert "an operator&#x27;s typo" in html
    assert 'data-frontier-running="0"' in html


def test_every_tenants_routes_are_listed(client, superuser, tenant_a, tenant_b):
    for tenant, hostname in ((tenant_a, "shop.localhost"), (tenant_b, "blog.localhost")):
        environment = tenant.environments.order_by("pk").first()
        stack = Stack.objects.create(tenant=tenant, environment=environment, name="web")
        service = Service.objects.create(stack=stack, name="web", image="berth-demo/web:1.0")
        Route.objects.create(
            tenant=tenant, stack=stack, service=service, hostname=hostname, port=8080
        )

    html = login(client, superuser).get("/traffic/frontier/").content.decode()

    assert "shop.localhost/ → :8080" in html and "blog.localhost/ → :8080" in html
    assert html.count("no server") == 2


def test_apply_now_runs_an_apply_and_says_so(client, superuser):
    response = login(client, superuser).post("/traffic/frontier/apply/", follow=True)

    assert response.redirect_chain == [("/traffic/frontier/", 302)]
    assert "Frontier up to date: 0 routes." in response.content.decode()
    assert frontier.read_status()["ok"] is True


def test_the_page_is_for_operators_only(client, owner, tenant_a):
    assert login(client, owner).get("/traffic/frontier/").status_code == 404
    assert client.post("/traffic/frontier/apply/").status_code == 404
    assert frontier.read_status() == {}


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/traffic/frontier/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
