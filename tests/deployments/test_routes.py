"""Route service functions: host name claims across tenants, input rules, template routes
that follow the revision, events and the frontier signal."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.activity.models import Event
from apps.deployments import routes, services
from apps.deployments.models import HostnameClaim, Rollout, Route, Stack
from apps.deployments.signals import frontier_changed
from apps.traffic import tasks as traffic_tasks
from apps.traffic.models import Certificate
from tests.conftest import login
from tests.deployments.stack_fixtures import COMPOSE, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(stack):
    return stack.services.get(name="web")


@pytest.fixture
def stack_b(outsider, env_b, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        return services.create_stack(outsider, env_b, "other", compose=COMPOSE)


@pytest.fixture
def signals():
    """The frontier_changed signals sent, as (stack_id, reason)."""
    sent = []

    def receiver(sender, stack_id=None, reason="", **kwargs):
        sent.append((stack_id, reason))

    frontier_changed.connect(receiver, weak=False)
    yield sent
    frontier_changed.disconnect(receiver)


def add(actor, service, **fields):
    fields.setdefault("hostname", "shop.example.com")
    fields.setdefault("port", 80)
    return routes.create_route(actor, service, **fields)


def errors(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.message_dict


# --- create ------------------------------------------------------------------------------------


def test_create_lowercases_claims_records_and_signals_after_commit(
    member, web, signals, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        route = add(member, web, hostname=" Shop.Example.COM ", path="/api", port=8080)
        assert signals == []  # nothing before the commit: the frontier reads committed rows
    assert (route.hostname, route.path, route.port) == ("shop.example.com", "/api", 8080)
    assert route.origin == Route.Origin.USER and route.tenant == web.stack.tenant
    assert route.stack == web.stack
    claim = HostnameClaim.objects.get(hostname="shop.example.com")
    assert claim.tenant == web.stack.tenant
    event = Event.objects.get(action="route.create")
    assert event.data["stack"] == web.stack_id and event.data["hostname"] == "shop.example.com"
    assert signals == [(web.stack_id, "route.create")]


def test_another_tenants_hostname_is_refused_without_naming_the_tenant(
    outsider, member, web, stack_b
):
    add(member, web, hostname="shop.example.com")
    with pytest.raises(ValidationError) as exc:
        add(outsider, stack_b.services.get(name="web"), hostname="SHOP.example.com", path="/x")
    message = errors(exc)["hostname"][0]
    assert message == "shop.example.com is taken by another tenant."
    assert "acme" not in message.lower()
    assert Route.objects.count() == 1
    assert HostnameClaim.objects.get().tenant == web.stack.tenant


def test_hostname_is_released_with_the_tenants_last_route(outsider, member, web, stack_b):
    first = add(member, web, path="/")
    second = add(member, web, path="/api")
    routes.delete_route(member, first)
    assert HostnameClaim.objects.filter(hostname="shop.example.com").exists()
    routes.delete_route(member, second)
    assert not HostnameClaim.objects.exists()
    taken = add(outsider, stack_b.services.get(name="web"))
    assert HostnameClaim.objects.get().tenant == stack_b.tenant
    assert taken.tenant == stack_b.tenant


def test_a_claim_left_by_a_removed_stack_is_free_again(outsider, member, web, stack_b):
    add(member, web)
    Stack.objects.filter(pk=web.stack_id).delete()  # what the reconciler does at the end
    assert HostnameClaim.objects.filter(tenant=web.stack.tenant).exists()
    route = add(outsider, stack_b.services.get(name="web"))
    assert route.tenant == stack_b.tenant
    assert HostnameClaim.objects.get().tenant == stack_b.tenant


def test_same_hostname_and_path_twice_is_a_path_error(member, web, stack):
    add(member, web, path="/api")
    with pytest.raises(ValidationError) as exc:
        add(member, stack.services.get(name="worker"), path="/api", port=9000)
    assert errors(exc) == {"path": ["shop.example.com/api already has a route."]}
    assert Route.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"hostname": "*.example.com"}, "hostname"),
        ({"hostname": "10.0.0.1"}, "hostname"),
        ({"hostname": "shop..example.com"}, "hostname"),
        ({"hostname": "-shop.example.com"}, "hostname"),
        ({"hostname": ""}, "hostname"),
        ({"hostname": "a" * 64 + ".example.com"}, "hostname"),
        ({"path": "api"}, "path"),
        ({"path": "/a b"}, "path"),
        ({"path": "/a\nb"}, "path"),
        ({"path": "/a;b"}, "path"),
        ({"path": "/" + "a" * 200}, "path"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "http"}, "port"),
        ({"port": True}, "port"),
        ({"balance": "random"}, "balance"),
        ({"tls": "maybe"}, "tls"),
        ({"redirect_https": True}, "redirect_https"),
        ({"tls": "uploaded"}, "tls"),  # no certificate uploaded for the name
    ],
)
def test_bad_input_is_an_error_on_its_field(member, web, fields, field):
    with pytest.raises(ValidationError) as exc:
        add(member, web, **fields)
    assert field in errors(exc), errors(exc)
    assert not Route.objects.exists()
    assert not HostnameClaim.objects.exists()


def test_self_signed_tls_and_redirect_are_accepted(member, web):
    route = add(member, web, tls="self-signed", redirect_https=True)
    assert (route.tls, route.redirect_https) == ("self-signed", True)


def test_acme_needs_a_directory(member, web, settings):
    settings.BERTH_ACME_DIRECTORY = ""
    with pytest.raises(ValidationError) as exc:
        add(member, web, tls="acme")
    assert "BERTH_ACME_DIRECTORY" in errors(exc)["tls"][0]
    settings.BERTH_ACME_DIRECTORY = "https://127.0.0.1:14000/dir"
    assert add(member, web, tls="acme").tls == "acme"


def test_uploaded_tls_needs_the_tenants_uploaded_certificate(member, web):
    Certificate.objects.create(
        tenant=web.stack.tenant, hostname="shop.example.com", kind="self-signed"
    )
    with pytest.raises(ValidationError):
        add(member, web, tls="uploaded")
    Certificate.objects.filter(hostname="shop.example.com").update(kind="uploaded")
    assert add(member, web, tls="uploaded").tls == "uploaded"


def test_path_may_be_200_characters_of_the_allowed_set(member, web):
    path = "/" + ("a-Z_0.9~%/" * 20)[:199]
    assert add(member, web, path=path).path == path


def test_viewer_and_outsider_cannot_add_a_route(viewer, outsider, web):
    for person in (viewer, outsider):
        with pytest.raises(PermissionDenied):
            add(person, web)
    assert not Route.objects.exists()


def test_no_route_to_a_stack_being_removed(member, owner, web, stack):
    services.remove(owner, stack)
    with pytest.raises(ValidationError) as exc:
        add(member, web)
    assert "service" in errors(exc)


# --- update and delete -------------------------------------------------------------------------


def test_update_moves_the_claim_and_records(member, web, stack, signals):
    route = add(member, web)
    worker = stack.services.get(name="worker")
    route = routes.update_route(
        member, route, hostname="api.example.com", port=9000, service=worker, balance="leastconn"
    )
    assert (route.hostname, route.port, route.service, route.balance) == (
        "api.example.com",
        9000,
        worker,
        "leastconn",
    )
    assert list(HostnameClaim.objects.values_list("hostname", flat=True)) == ["api.example.com"]
    assert Event.objects.filter(action="route.update").exists()


def test_update_cannot_move_a_route_to_another_tenants_service(member, web, stack_b):
    route = add(member, web)
    with pytest.raises(ValidationError) as exc:
        routes.update_route(member, route, service=stack_b.services.get(name="web"))
    assert "service" in errors(exc)
    route.refresh_from_db()
    assert route.service == web


def test_update_refuses_fields_that_are_not_editable(member, web):
    route = add(member, web)
    with pytest.raises(ValidationError) as exc:
        routes.update_route(member, route, origin="template")
    assert "origin" in errors(exc)


def test_viewer_cannot_update_or_delete(member, viewer, web):
    route = add(member, web)
    with pytest.raises(PermissionDenied):
        routes.update_route(viewer, route, port=81)
    with pytest.raises(PermissionDenied):
        routes.delete_route(viewer, route)
    assert Route.objects.get().port == 80


def test_delete_records_and_signals(member, web, signals, django_capture_on_commit_callbacks):
    route = add(member, web)
    with django_capture_on_commit_callbacks(execute=True):
        routes.delete_route(member, route)
    assert not Route.objects.exists()
    event = Event.objects.get(action="route.delete")
    assert event.object_id == str(route.pk)
    assert signals == [(web.stack_id, "route.delete")]


# --- template routes ---------------------------------------------------------------------------

DOMAIN = {"variable": "DOMAIN", "label": "Hostname", "type": "hostname"}
BERTH = {"services": {"web": {"routes": [{"hostname": "${DOMAIN}", "path": "/", "port": 80}]}}}


def test_a_user_route_removed_with_its_service_is_recorded(member, stack, web):
    """A revision without the service (an upgrade, a rollback) takes its routes along:
    an Event says so, the frontier hears of it, and the host name is free again."""
    routes.create_route(member, web, hostname="gone.example.com", port=8080)
    spec = dict(stack.current_revision.spec)
    spec["project"] = {**spec["project"], "services": {}}
    services._new_revision(member, stack, spec, reason="upgrade")
    assert not Route.objects.filter(hostname="gone.example.com").exists()
    event = Event.objects.filter(action="route.delete").latest("created_at")
    assert "gone.example.com/" in event.message and event.data["service"] == "web"
    assert not HostnameClaim.objects.filter(hostname="gone.example.com").exists()


@pytest.fixture
def template_stack(owner, env_a, template, django_capture_on_commit_callbacks):
    version = make_version(template[0], "3.0.0", COMPOSE, [DOMAIN], config=BERTH)
    with django_capture_on_commit_callbacks():
        return services.create_stack(owner, env_a, "shop", template_version=version)


def spec_with(stack, *routes_of_web, **other_services):
    spec = dict(stack.current_revision.spec)
    services_ = {"web": {"routes": list(routes_of_web)}, **other_services}
    spec["berth"] = {"services": services_}
    return spec


def route_rows(stack):
    return sorted(stack.routes.values_list("service__name", "hostname", "path", "port", "origin"))


def test_template_routes_follow_the_spec(owner, template_stack, signals):
    stack = template_stack
    routes.sync_template_routes(
        stack, spec_with(stack, {"hostname": "Shop.example.com", "path": "/", "port": 80})
    )
    assert route_rows(stack) == [("web", "shop.example.com", "/", 80, "template")]
    routes.sync_template_routes(
        stack,
        spec_with(
            stack,
            {"hostname": "shop.example.com", "path": "/", "port": 8080},
            {"hostname": "", "path": "/", "port": 80},  # an empty answer: no route
            worker={"routes": [{"hostname": "jobs.example.com", "path": "/", "port": 9000}]},
        ),
    )
    assert route_rows(stack) == [
        ("web", "shop.example.com", "/", 8080, "template"),
        ("worker", "jobs.example.com", "/", 9000, "template"),
    ]
    routes.sync_template_routes(stack, spec_with(stack))
    assert route_rows(stack) == []
    assert not HostnameClaim.objects.exists()
    assert Event.objects.filter(action="route.sync").count() == 3


def test_sync_keeps_user_routes(member, template_stack):
    stack = template_stack
    user = add(member, stack.services.get(name="web"), hostname="mine.example.com")
    routes.sync_template_routes(stack, spec_with(stack))
    assert list(stack.routes.all()) == [user]


def test_template_route_on_another_tenants_hostname_is_an_error_on_the_question(
    outsider, template_stack, stack_b
):
    add(outsider, stack_b.services.get(name="web"), hostname="shop.example.com")
    with pytest.raises(ValidationError) as exc:
        routes.sync_template_routes(
            template_stack,
            spec_with(template_stack, {"hostname": "shop.example.com", "path": "/", "port": 80}),
        )
    assert errors(exc) == {"DOMAIN": ["shop.example.com is taken by another tenant."]}
    assert not template_stack.routes.exists()


def test_template_route_on_a_taken_path_is_an_error_on_the_question(member, template_stack):
    add(member, template_stack.services.get(name="worker"), hostname="shop.example.com")
    with pytest.raises(ValidationError) as exc:
        routes.sync_template_routes(
            template_stack,
            spec_with(template_stack, {"hostname": "shop.example.com", "path": "/", "port": 80}),
        )
    assert errors(exc) == {"DOMAIN": ["shop.example.com/ already has a route."]}


def test_template_routes_are_read_only_one_by_one(member, template_stack):
    routes.sync_template_routes(
        template_stack,
        spec_with(template_stack, {"hostname": "shop.example.com", "path": "/", "port": 80}),
    )
    route = template_stack.routes.get()
    for change in (
        lambda: routes.update_route(member, route, port=81),
        lambda: routes.delete_route(member, route),
    ):
        with pytest.raises(ValidationError) as exc:
            change()
        assert "berth.yml" in " ".join(exc.value.messages)
    assert template_stack.routes.get().port == 80


def test_deploy_with_a_hostname_answer_creates_the_template_route(owner, env_a, template):
    version = make_version(template[0], "3.0.0", COMPOSE, [DOMAIN], config=BERTH)
    stack = services.create_stack(
        owner, env_a, "shop", template_version=version, answers={"DOMAIN": "Shop.Example.com"}
    )
    assert route_rows(stack) == [("web", "shop.example.com", "/", 80, "template")]
    services.redeploy(owner, stack, {"DOMAIN": ""})
    assert route_rows(stack) == []


def test_deploy_on_another_tenants_hostname_is_refused_on_the_question(
    owner, outsider, env_a, template, stack_b
):
    add(outsider, stack_b.services.get(name="web"), hostname="shop.example.com")
    version = make_version(template[0], "3.0.0", COMPOSE, [DOMAIN], config=BERTH)
    with pytest.raises(ValidationError) as exc:
        services.create_stack(
            owner, env_a, "shop", template_version=version, answers={"DOMAIN": "shop.example.com"}
        )
    assert errors(exc) == {"DOMAIN": ["shop.example.com is taken by another tenant."]}
    assert not Stack.objects.filter(name="shop", tenant=env_a.tenant).exists()


# --- the stack page ----------------------------------------------------------------------------


def page(client, stack) -> str:
    response = client.get(reverse("stacks:detail", args=[stack.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_stack_page_lists_routes_as_links_on_the_frontier(member, web, stack, settings):
    settings.BERTH_FRONTIER_ADDR = "127.0.0.1:8880"
    add(member, web, hostname="shop.localhost", path="/api")
    body = page(login(Client(), member), stack)
    assert 'href="http://shop.localhost:8880/api"' in body
    assert reverse("stack_routes:health", args=[stack.pk]) in body  # health comes from htmx
    assert 'id="route-form"' in body
    assert reverse("stacks:route_delete", args=[Route.objects.get().pk]) in body


def test_viewer_sees_routes_without_forms(member, viewer, web, stack):
    add(member, web)
    body = page(login(Client(), viewer), stack)
    assert "http://shop.example.com" in body
    assert 'id="route-form"' not in body
    assert reverse("stacks:route_delete", args=[Route.objects.get().pk]) not in body


def test_route_form_adds_a_route(member, web, stack):
    client = login(Client(), member)
    form = {"service": web.pk, "hostname": "Shop.localhost", "path": "/", "port": "8080"}
    response = client.post(reverse("stacks:route_add", args=[stack.pk]), {**form, "sticky": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("stacks:detail", args=[stack.pk]) + "#routes"
    route = Route.objects.get()
    assert (route.hostname, route.port, route.sticky, route.service) == (
        "shop.localhost",
        8080,
        True,
        web,
    )


def test_route_form_with_https_links_to_the_tls_port(member, web, stack, settings):
    settings.BERTH_FRONTIER_TLS_ADDR = "127.0.0.1:8443"
    client = login(Client(), member)
    form = {"service": web.pk, "hostname": "shop.localhost", "port": "8080"}
    tls = {"tls": "self-signed", "redirect_https": "on"}
    response = client.post(reverse("stacks:route_add", args=[stack.pk]), {**form, **tls})
    assert response.status_code == 302
    # What the worker does once the route is committed: the link is HTTPS once the
    # self-signed certificate is valid.
    traffic_tasks.ensure_certificates(stack.pk)
    route = Route.objects.get()
    assert (route.tls, route.redirect_https) == ("self-signed", True)
    assert 'href="https://shop.localhost:8443/"' in page(client, stack)


def test_https_routes_need_an_https_listener_and_link_to_http_until_served(
    member, web, stack, settings
):
    settings.BERTH_FRONTIER_TLS_ADDR = ""
    with pytest.raises(ValidationError) as exc:
        routes.create_route(member, web, hostname="a.localhost", port=8080, tls="self-signed")
    assert "no HTTPS listener" in exc.value.message_dict["tls"][0]
    settings.BERTH_FRONTIER_TLS_ADDR = "127.0.0.1:8443"
    route = Route.objects.create(
        tenant=stack.tenant, stack=stack, service=web, hostname="b.localhost", port=8080,
        tls="self-signed",
    )  # fmt: skip
    assert routes.route_url(route).startswith("http://b.localhost:")  # no valid certificate


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hostname": "*.localhost"}, "Wildcard host names are not supported."),
        ({"path": "/a b"}, "may use only letters"),
        ({"port": "0"}, "greater than or equal to 1"),
        ({"redirect_https": "on"}, "Redirecting to HTTPS needs a certificate"),
    ],
)
def test_route_form_shows_errors_by_the_fields(member, web, stack, fields, message):
    client = login(Client(), member)
    form = {"service": web.pk, "hostname": "shop.localhost", "path": "/", "port": "80", **fields}
    response = client.post(reverse("stacks:route_add", args=[stack.pk]), form)
    assert response.status_code == 200
    body = response.content.decode()
    assert message in body and 'class="field-error"' in body
    assert '<details class="padded" open>' in body
    assert not Route.objects.exists()


def test_route_form_refuses_another_tenants_hostname(member, outsider, web, stack, stack_b):
    add(outsider, stack_b.services.get(name="web"), hostname="shop.localhost")
    client = login(Client(), member)
    form = {"service": web.pk, "hostname": "shop.localhost", "path": "/", "port": "80"}
    response = client.post(reverse("stacks:route_add", args=[stack.pk]), form)
    assert "shop.localhost is taken by another tenant." in response.content.decode()
    assert not Route.objects.filter(stack=stack).exists()


def test_route_form_cannot_name_another_stacks_service(member, web, stack, stack_b):
    client = login(Client(), member)
    other = stack_b.services.get(name="web")
    form = {"service": other.pk, "hostname": "shop.localhost", "path": "/", "port": "80"}
    response = client.post(reverse("stacks:route_add", args=[stack.pk]), form)
    assert response.status_code == 200 and 'class="field-error"' in response.content.decode()
    assert not Route.objects.exists()


def test_viewer_and_outsider_cannot_post_routes(viewer, outsider, member, web, stack):
    route = add(member, web)
    form = {"service": web.pk, "hostname": "x.localhost", "path": "/", "port": "80"}
    for person, status in ((viewer, 403), (outsider, 404)):
        client = login(Client(), person)
        assert client.post(reverse("stacks:route_add", args=[stack.pk]), form).status_code == status
        delete = client.post(reverse("stacks:route_delete", args=[route.pk]))
        assert delete.status_code in (302, 403, 404)
    assert list(Route.objects.all()) == [route]


def test_remove_button_deletes_a_user_route_but_not_a_template_one(member, template_stack):
    spec = spec_with(template_stack, {"hostname": "shop.example.com", "path": "/", "port": 80})
    routes.sync_template_routes(template_stack, spec)
    template_route = template_stack.routes.get()
    user_route = add(member, template_stack.services.get(name="worker"), hostname="x.localhost")
    client = login(Client(), member)
    assert client.post(reverse("stacks:route_delete", args=[user_route.pk])).status_code == 302
    response = client.post(reverse("stacks:route_delete", args=[template_route.pk]), follow=True)
    assert "berth.yml" in response.content.decode()
    assert list(Route.objects.all()) == [template_route]


def test_flapping_service_is_flagged_on_its_row(member, web, stack):
    web.flapping = True
    web.replacements = ["2026-12-06T01:00:00+00:00"] * 3
    web.save()
    body = page(login(Client(), member), stack)
    assert "data-flapping" in body and "3 times in the last hour" in body


def test_health_fragment_renders_the_table_without_a_frontier(member, web, stack):
    add(member, web, hostname="shop.localhost")
    client = login(Client(), member)
    response = client.get(reverse("stack_routes:health", args=[stack.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="route-table"')
    assert "http://shop.localhost" in body and "data-route-health" in body
    assert "Backend health unavailable: the frontier does not answer." in body


# --- canary controls on the stack page ---------------------------------------------------------


@pytest.fixture
def canary(stack):
    return Rollout.objects.create(
        stack=stack,
        service="web",
        strategy=Rollout.Strategy.CANARY,
        state=Rollout.State.CANARY,
        from_revision=1,
        to_revision=1,
        canary_weight=10,
    )


def test_stack_page_shows_canary_controls_to_members_only(member, viewer, stack, canary):
    body = page(login(Client(), member), stack)
    assert "data-canary-weight" in body and "10 %" in body
    for name in ("rollout_weight", "rollout_promote", "rollout_abort"):
        assert reverse(f"stacks:{name}", args=[canary.pk]) in body
    body = page(login(Client(), viewer), stack)
    assert "data-canary-weight" in body
    assert reverse("stacks:rollout_weight", args=[canary.pk]) not in body


def test_stack_page_says_why_an_upgrade_was_rolled_back(viewer, stack):
    """The stack is healthy again on its old revision: the page says what happened."""
    Rollout.objects.create(
        stack=stack,
        service="web",
        strategy=Rollout.Strategy.ROLLING,
        state=Rollout.State.ROLLED_BACK,
        from_revision=1,
        to_revision=2,
        message="web: the new container did not become healthy; rolled back to r1",
    )
    body = page(login(Client(), viewer), stack)
    assert 'data-rollout-state="rolled-back"' in body
    assert "did not become healthy; rolled back to r1" in body


def test_weight_form_sets_the_canary_weight(member, stack, canary):
    client = login(Client(), member)
    url = reverse("stacks:rollout_weight", args=[canary.pk])
    response = client.post(url, {"weight": "25"})
    assert response["Location"] == reverse("stacks:detail", args=[stack.pk]) + "#routes"
    canary.refresh_from_db()
    assert canary.canary_weight == 25
    response = client.post(url, {"weight": "100"}, follow=True)
    assert "Canary weight:" in response.content.decode()
    canary.refresh_from_db()
    assert canary.canary_weight == 25


def test_promote_and_abort_buttons(member, stack, canary, django_capture_on_commit_callbacks):
    client = login(Client(), member)
    with django_capture_on_commit_callbacks():
        response = client.post(reverse("stacks:rollout_promote", args=[canary.pk]), follow=True)
    assert "Promoting web to r1." in response.content.decode()
    canary.refresh_from_db()
    assert canary.state == Rollout.State.PROMOTING
    with django_capture_on_commit_callbacks():
        client.post(reverse("stacks:rollout_abort", args=[canary.pk]))
    canary.refresh_from_db()
    assert canary.state == Rollout.State.ABORTING
    response = client.post(reverse("stacks:rollout_promote", args=[canary.pk]), follow=True)
    assert "not a canary" in response.content.decode()


def test_viewer_and_outsider_cannot_steer_a_canary(viewer, outsider, canary):
    for person in (viewer, outsider):
        client = login(Client(), person)
        for name in ("rollout_weight", "rollout_promote", "rollout_abort"):
            response = client.post(reverse(f"stacks:{name}", args=[canary.pk]), {"weight": "50"})
            assert response.status_code in (302, 403, 404)
    canary.refresh_from_db()
    assert (canary.state, canary.canary_weight) == (Rollout.State.CANARY, 10)


# --- two tenants at the same moment ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_tenants_racing_for_a_hostname_get_one_route_and_one_message(
    member, outsider, env_a, env_b
):
    """Both ask at once, each in its own transaction and connection: the unique claim
    decides; the loser gets the field error, never an IntegrityError (a 500)."""
    web_a = services.create_stack(member, env_a, "shop", compose=COMPOSE).services.get(name="web")
    web_b = services.create_stack(outsider, env_b, "shop", compose=COMPOSE).services.get(name="web")
    for attempt in range(5):
        hostname = f"race{attempt}.example.com"
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def claim(name, actor, service, hostname=hostname, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait(timeout=10)
                add(actor, service, hostname=hostname)
                outcomes[name] = "route"
            except ValidationError as exc:
                outcomes[name] = exc.message_dict["hostname"][0]
            except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
                outcomes[name] = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()

        threads = [
            threading.Thread(target=claim, args=("a", member, web_a)),
            threading.Thread(target=claim, args=("b", outsider, web_b)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        taken = f"{hostname} is taken by another tenant."
        assert sorted(outcomes.values()) == sorted(["route", taken]), outcomes
        winner = web_a if outcomes["a"] == "route" else web_b
        assert HostnameClaim.objects.get(hostname=hostname).tenant_id == winner.stack.tenant_id
        assert list(Route.objects.filter(hostname=hostname).values_list("service", flat=True)) == [
            winner.pk
        ]
