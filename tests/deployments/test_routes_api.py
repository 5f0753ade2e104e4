"""/api/v1/routes/ and /api/v1/services/{id}/endpoints/: tenants, roles, fields, template
routes read-only, filters and service discovery."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.deployments import routes, services
from apps.deployments.models import Container, HostnameClaim, Route
from apps.hosts.models import Host
from tests.deployments.stack_fixtures import COMPOSE
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(stack):
    return stack.services.get(name="web")


@pytest.fixture
def stack_b(outsider, env_b, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        return services.create_stack(outsider, env_b, "other", compose=COMPOSE)


def body(service, **fields):
    return {"service": service.pk, "hostname": "shop.example.com", "port": 8080, **fields}


def test_member_creates_lists_and_reads_a_route(api_as, member, web, tenant_a):
    api, _ = api_as(member)
    response = api.post("/api/v1/routes/", body(web, path="/api", sticky=True), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["hostname"] == "shop.example.com" and data["path"] == "/api"
    assert data["service"] == web.pk and data["service_name"] == "web"
    assert data["stack"] == web.stack_id and data["origin"] == "user"
    assert data["sticky"] is True and data["balance"] == "roundrobin" and data["tls"] == "none"
    assert data["url"].startswith("http://shop.example.com:") and data["url"].endswith("/api")
    assert [r["id"] for r in results(api.get("/api/v1/routes/"))] == [data["id"]]
    assert api.get(f"/api/v1/routes/{data['id']}/").json()["port"] == 8080


def test_cross_tenant_hostname_claim_is_a_400_on_hostname(api_as, member, outsider, web, stack_b):
    mine, _ = api_as(member)
    assert mine.post("/api/v1/routes/", body(web), format="json").status_code == 201
    theirs, _ = api_as(outsider)
    response = theirs.post(
        "/api/v1/routes/",
        body(stack_b.services.get(name="web"), hostname="Shop.Example.com", path="/other"),
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"hostname": ["shop.example.com is taken by another tenant."]}
    assert "acme" not in response.content.decode().lower()
    assert Route.objects.count() == 1


def test_route_to_another_tenants_service_does_not_exist(api_as, outsider, web):
    api, _ = api_as(outsider)
    response = api.post("/api/v1/routes/", body(web), format="json")
    assert response.status_code == 400
    assert response.json() == {"service": ["No such service."]}
    assert not Route.objects.exists() and not HostnameClaim.objects.exists()


def test_moving_a_route_to_another_tenants_service_is_refused(
    api_as, member, web, stack_b, tenant_a
):
    api, _ = api_as(member)
    route = routes.create_route(member, web, hostname="shop.example.com", port=80)
    other = stack_b.services.get(name="web")
    response = api.patch(f"/api/v1/routes/{route.pk}/", {"service": other.pk}, format="json")
    assert response.status_code == 400 and "service" in response.json()
    route.refresh_from_db()
    assert route.service == web


def test_another_tenants_route_is_404(api_as, member, outsider, web):
    route = routes.create_route(member, web, hostname="shop.example.com", port=80)
    api, _ = api_as(outsider)
    url = f"/api/v1/routes/{route.pk}/"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"port": 81}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    assert results(api.get("/api/v1/routes/")) == []
    assert results(api.get(f"/api/v1/routes/?stack={web.stack_id}")) == []
    assert Route.objects.get().port == 80


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"hostname": "*.example.com"}, "hostname"),
        ({"hostname": ""}, "hostname"),
        ({"hostname": "x" * 300}, "hostname"),
        ({"path": "no-slash"}, "path"),
        ({"path": "/a b"}, "path"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "http"}, "port"),
        ({"balance": "random"}, "balance"),
        ({"tls": "maybe"}, "tls"),
        ({"redirect_https": True}, "redirect_https"),
        ({"origin": "template"}, "origin"),
        ({"tenant": "globex"}, "tenant"),
        ({"service": "web"}, "service"),
        ({"service": 999999}, "service"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_as, member, web, fields, field):
    api, _ = api_as(member)
    response = api.post("/api/v1/routes/", {**body(web), **fields}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Route.objects.exists()


def test_same_hostname_and_path_twice_is_a_400(api_as, member, web):
    api, _ = api_as(member)
    assert api.post("/api/v1/routes/", body(web), format="json").status_code == 201
    response = api.post("/api/v1/routes/", body(web, port=9000), format="json")
    assert response.status_code == 400
    assert response.json() == {"path": ["shop.example.com/ already has a route."]}


def test_viewer_and_read_only_token_get_403(api_as, member, viewer, web, tenant_a):
    route = routes.create_route(member, web, hostname="shop.example.com", port=80)
    url = f"/api/v1/routes/{route.pk}/"
    read_only, _ = api_as(member, read_only=True)
    viewer_api, _ = api_as(viewer)
    for api in (viewer_api, read_only):
        assert api.get(url).status_code == 200
        assert api.post("/api/v1/routes/", body(web, path="/x"), format="json").status_code == 403
        assert api.patch(url, {"port": 81}, format="json").status_code == 403
        assert api.delete(url).status_code == 403
    assert Route.objects.get().port == 80 and Route.objects.count() == 1


def test_member_updates_and_deletes_a_user_route(api_as, member, web):
    api, _ = api_as(member)
    route = routes.create_route(member, web, hostname="shop.example.com", port=80)
    url = f"/api/v1/routes/{route.pk}/"
    response = api.patch(url, {"port": 81, "balance": "leastconn"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["port"], response.json()["balance"]) == (81, "leastconn")
    full = body(web, hostname="api.example.com", path="/v1")
    assert api.put(url, full, format="json").status_code == 200
    assert Route.objects.get().hostname == "api.example.com"
    assert api.delete(url).status_code == 204
    assert not Route.objects.exists() and not HostnameClaim.objects.exists()


def test_template_routes_are_read_only_through_the_api(api_as, member, stack):
    spec = {**stack.current_revision.spec}
    spec["berth"] = {
        "services": {"web": {"routes": [{"hostname": "shop.example.com", "path": "/", "port": 80}]}}
    }
    routes.sync_template_routes(stack, spec)
    route = stack.routes.get()
    api, _ = api_as(member)
    url = f"/api/v1/routes/{route.pk}/"
    assert api.get(url).json()["origin"] == "template"
    for response in (api.patch(url, {"port": 81}, format="json"), api.delete(url)):
        assert response.status_code == 400
        assert "berth.yml" in str(response.json())
    assert Route.objects.get().port == 80


def test_filters_by_stack_service_and_hostname(api_as, member, owner, env_a, web, stack):
    other = services.create_stack(owner, env_a, "blog", compose=COMPOSE)
    a = routes.create_route(member, web, hostname="shop.example.com", port=80)
    worker = stack.services.get(name="worker")
    b = routes.create_route(member, worker, hostname="jobs.example.com", port=80)
    c = routes.create_route(
        member, other.services.get(name="web"), hostname="blog.example.com", port=80
    )
    api, _ = api_as(member)

    def ids(query):
        return sorted(r["id"] for r in results(api.get(f"/api/v1/routes/?{query}")))

    assert ids(f"stack={stack.pk}") == sorted([a.pk, b.pk])
    assert ids(f"service={worker.pk}") == [b.pk]
    assert ids("hostname=BLOG.example.com") == [c.pk]
    assert api.get("/api/v1/routes/?stack=x").status_code == 400


# --- endpoints ---------------------------------------------------------------------------------


def add_container(web, host, replica, **fields):
    values = {"state": "running", "health": "healthy", "address": f"10.9.0.{replica + 1}"}
    values.update(fields)
    return Container.objects.create(
        stack=web.stack,
        service=web,
        host=host,
        engine_id=f"engine-{replica}",
        name=f"shop-web-{replica}",
        replica=replica,
        revision=1,
        ports=[{"container_port": 80, "protocol": "tcp"}],
        **values,
    )


def test_endpoints_list_healthy_containers_with_dns_names(api_as, viewer, web, tenant_a):
    host = Host.objects.create(name="local", endpoint="unix:///nonexistent/docker.sock")
    add_container(web, host, 1)
    add_container(web, host, 2, health="")  # no health check: takes traffic when running
    add_container(web, host, 3, health="unhealthy")
    add_container(web, host, 4, health="starting")
    add_container(web, host, 5, draining=True)
    add_container(web, host, 6, state="exited")
    add_container(web, host, 7, address="")
    api, _ = api_as(viewer)
    response = api.get(f"/api/v1/services/{web.pk}/endpoints/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert [e["name"] for e in data] == ["shop-web-1", "shop-web-2"]
    assert data[0]["address"] == "10.9.0.2"
    assert data[0]["ports"] == [{"container_port": 80, "protocol": "tcp"}]
    assert data[0]["dns_names"] == ["web", "web.shop"]


def test_endpoints_of_another_tenants_service_are_404(api_as, outsider, web):
    api, _ = api_as(outsider)
    assert api.get(f"/api/v1/services/{web.pk}/endpoints/").status_code == 404


def test_schema_stays_valid_and_lists_routes(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/routes/{id}/:" in text
    assert "/api/v1/services/{id}/endpoints/:" in text
