"""The frontier's renderer: a pure function of a snapshot (plain data), plus the
snapshot's own rules (which containers may receive traffic) against the database, and
`haproxy -c` on what it renders."""

from __future__ import annotations

import datetime
import subprocess

import pytest

from apps.deployments.models import Container, Rollout, Route, Service, Stack
from apps.hosts.models import Host
from apps.traffic import process
from apps.traffic.frontier import (
    RouteSnap,
    ServerSnap,
    Snapshot,
    render,
    server_weights,
    snapshot,
)


def snap(*routes: RouteSnap, **extra) -> Snapshot:
    return Snapshot(directory="/srv/frontier", addr="127.0.0.1:8880", routes=routes, **extra)


def route(id: int = 1, hostname: str = "shop.localhost", path: str = "/", **extra) -> RouteSnap:
    servers = extra.pop("servers", (ServerSnap(10 * id, "10.1.0.2"),))
    return RouteSnap(id=id, hostname=hostname, path=path, port=8080, servers=servers, **extra)


def backend(config: str, name: str) -> str:
    """The lines of one backend section."""
    section = config.split(f"\nbackend {name}\n", 1)[1]
    return section.split("\n\n", 1)[0]


def test_hosts_are_matched_lowercased_without_their_port():
    rendered = render(snap(route(1, "shop.localhost"), route(2, "api.shop.localhost")))

    assert "set-var(txn.host) req.hdr(host),field(1,:),lower" in rendered.config
    assert rendered.files["prefix.map"].splitlines() == [
        "api.shop.localhost/ r2",
        "shop.localhost/ r1",
    ]


def test_longest_path_prefix_comes_first():
    rendered = render(
        snap(route(1, path="/"), route(2, path="/api"), route(3, path="/api/v2/"), route(4))
    )

    assert rendered.files["prefix.map"].splitlines() == [
        "shop.localhost/api/v2/ r3",
        "shop.localhost/api/ r2",
        "shop.localhost/ r1",
    ]
    # "/api" itself goes to the /api route, never "/apix" (the prefix ends with a slash).
    assert rendered.files["exact.map"].splitlines() == [
        "shop.localhost/api r2",
        "shop.localhost/api/v2 r3",
    ]
    assert rendered.skipped == [
        "route 4 (shop.localhost/): another route already serves this host name and path"
    ]
    exact_at = rendered.config.index("exact.map")
    assert exact_at < rendered.config.index("prefix.map")


def test_balance_is_the_routes():
    rendered = render(snap(route(1), route(2, "b.localhost", balance="leastconn")))

    assert "balance roundrobin" in backend(rendered.config, "r1")
    assert "balance leastconn" in backend(rendered.config, "r2")


def test_sticky_route_inserts_a_cookie_naming_the_server():
    servers = (ServerSnap(7, "10.1.0.7"), ServerSnap(8, "10.1.0.8"))
    section = backend(render(snap(route(1, sticky=True, servers=servers))).config, "r1")

    assert "cookie berth-r1 insert indirect nocache httponly" in section
    assert "server c7 10.1.0.7:8080 weight 1 check inter 1s fall 2 rise 2 cookie c7" in section
    assert "cookie c8" in section
    assert "cookie" not in backend(render(snap(route(1, servers=servers))).config, "r1")


def test_health_check_is_http_when_the_service_declares_one():
    http = route(1, check_kind="http", check_path="/health", check_port=9000, check_expect=204)
    section = backend(render(snap(http)).config, "r1")

    assert "http-check send meth GET uri /health ver HTTP/1.1 hdr Host " in section
    assert "http-check expect status 204" in section
    assert "check inter 1s fall 2 rise 2 port 9000" in section
    assert "httpchk" not in backend(render(snap(route(1))).config, "r1")


@pytest.mark.parametrize(
    ("old", "new", "weight"),
    [
        (n_old, n_new, w)
        for n_old in (1, 2, 3, 4, 7)
        for n_new in (1, 2, 3)
        for w in (1, 10, 20, 50, 90, 99)
        # beyond 256:1 per server HAProxy cannot express the share (next test)
        if max(w * n_old / (100 - w) / n_new, (100 - w) * n_new / w / n_old) <= 256
    ],
)
def test_canary_revision_gets_its_weight_whatever_the_container_counts(old, new, weight):
    servers = tuple(ServerSnap(i, f"10.1.0.{i}", revision=1) for i in range(1, old + 1))
    servers += tuple(ServerSnap(100 + i, f"10.1.1.{i}", revision=2) for i in range(new))
    weights = server_weights(route(servers=servers, canary_revision=2, canary_weight=weight))

    canary = sum(w for sid, w in weights.items() if sid >= 100)
    share = 100 * canary / sum(weights.values())
    assert all(1 <= w <= 256 for w in weights.values())
    assert abs(share - weight) < 0.5


def test_a_canary_share_beyond_haproxys_weights_gets_the_closest_one():
    # 99 % to one new container beside seven old ones needs 693:1 per server; HAProxy
    # weights stop at 256: the new one gets 256 and each old one 1 (97.3 %).
    servers = tuple(ServerSnap(i, f"10.1.0.{i}", revision=1) for i in range(1, 8))
    servers += (ServerSnap(100, "10.1.1.1", revision=2),)
    weights = server_weights(route(servers=servers, canary_revision=2, canary_weight=99))

    assert weights == {**{i: 1 for i in range(1, 8)}, 100: 256}


def test_without_a_canary_every_server_weighs_the_same():
    servers = (ServerSnap(1, "10.1.0.1", 1), ServerSnap(2, "10.1.0.2", 2))

    assert server_weights(route(servers=servers)) == {1: 1, 2: 1}
    # A canary whose new containers are not healthy yet: the old ones take everything.
    only_old = route(servers=servers[:1], canary_revision=2, canary_weight=20)
    assert server_weights(only_old) == {1: 1}


def test_a_route_without_servers_renders_an_empty_backend():
    section = backend(render(snap(route(1, servers=()))).config, "r1")

    assert "server" not in section


@pytest.mark.parametrize(
    "hostname",
    [
        "shop.localhost\n    bind :80",
        "shop.localhost\n",
        "shop.localhost r9",
        "Shop.localhost",
        "shop_localhost",
        "*.localhost",
        "-shop.localhost",
        "",
        "a" * 64 + ".localhost",
    ],
)
def test_a_host_name_that_could_change_the_configuration_is_skipped(hostname):
    rendered = render(snap(route(1, hostname), route(2, "ok.localhost")))

    assert rendered.routes == 1
    assert "backend r1" not in rendered.config
    assert rendered.skipped[0].startswith("route 1 (")
    assert "r1" not in rendered.files["prefix.map"]


@pytest.mark.parametrize(
    "path",
    ["api", "/api\n", "/a b", "/a\n    bind :81", "/a#b", "/a?b=1", "/a{", '/a"', "/" + "a" * 200],
)
def test_a_path_that_could_change_the_configuration_is_skipped(path):
    rendered = render(snap(route(1, path=path)))

    assert rendered.routes == 0
    assert "path must start with /" in rendered.skipped[0]


def test_redirect_to_https_needs_a_certificate_for_the_host():
    routes = (route(1, redirect_https=True), route(2, "b.localhost", redirect_https=True))
    rendered = render(
        snap(
            *routes,
            tls_addr="127.0.0.1:8443",
            certificates={"shop.localhost": "/srv/frontier/certs/shop.localhost.pem"},
        )
    )

    assert (
        "http-request redirect location https://%[var(txn.host)]:8443%[capture.req.uri] "
        "code 302 if { var(txn.backend) -m str r1 }"
    ) in rendered.config
    assert "no HTTPS redirect, no certificate" in rendered.skipped[0]
    assert rendered.files["crt-list.txt"] == (
        "/srv/frontier/certs/shop.localhost.pem shop.localhost\n"
    )
    assert "frontend https\n    bind 127.0.0.1:8443 ssl crt-list" in rendered.config


def test_no_https_listener_without_certificates():
    rendered = render(snap(route(1, redirect_https=True), tls_addr="127.0.0.1:8443"))

    assert "frontend https" not in rendered.config
    assert "redirect" not in rendered.config.split("frontend http", 1)[1]
    assert "crt-list.txt" not in rendered.files


def test_acme_challenges_are_answered_from_a_map():
    challenges = {"tok-1": "tok-1.thumb", "bad token": "x", "tok-2\n": "x", "tok-3": "x\n"}
    rendered = render(snap(challenges=challenges))

    assert rendered.files["acme.map"] == "tok-1 tok-1.thumb\n"
    assert "path_beg /.well-known/acme-challenge/" in rendered.config


def test_unknown_hosts_get_the_not_found_page():
    rendered = render(snap())

    assert "default_backend no_route" in rendered.config
    assert "404 No route" in rendered.files["404.html"]


def test_rendered_configuration_passes_haproxy_check(tmp_path, tls_bundle):
    routes = (
        route(1, sticky=True, redirect_https=True, check_kind="http", check_path="/health"),
        route(2, path="/api", balance="leastconn"),
        route(3, "b.localhost", servers=()),
        route(
            4,
            "c.localhost",
            servers=(ServerSnap(1, "10.1.0.1", 1), ServerSnap(2, "fd00::2", 2)),
            canary_revision=2,
            canary_weight=20,
        ),
    )
    rendered = render(
        Snapshot(
            directory=str(tmp_path),
            addr="127.0.0.1:8880",
            tls_addr="127.0.0.1:8443",
            routes=routes,
            certificates={"shop.localhost": str(tls_bundle)},
            challenges={"tok": "tok.thumb"},
        )
    )
    generation = tmp_path / "gen" / rendered.generation
    generation.mkdir(parents=True)
    for name, text in rendered.files.items():
        (generation / name).write_text(text)
    (tmp_path / "haproxy.cfg").write_text(rendered.config)

    assert process.check(tmp_path / "haproxy.cfg") == ""
    assert "server c2 [fd00::2]:8080" in rendered.config


def test_haproxy_check_reports_what_is_wrong(tmp_path):
    rendered = render(snap(extra_global="no-such-directive 1"))
    (tmp_path / "haproxy.cfg").write_text(rendered.config)

    assert "no-such-directive" in process.check(tmp_path / "haproxy.cfg")


@pytest.fixture
def tls_bundle(tmp_path):
    """A self-signed certificate and its key in one PEM file, as HAProxy reads them."""
    pem = tmp_path / "shop.localhost.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=shop.localhost",
            "-keyout",
            str(pem),
            "-out",
            str(tmp_path / "c.pem"),
        ],
        check=True,
        capture_output=True,
    )
    pem.write_text(pem.read_text() + (tmp_path / "c.pem").read_text())
    return pem


# --- the snapshot: which containers receive traffic ---------------------------------------


@pytest.fixture
def web_stack(tenant_a):
    environment = tenant_a.environments.order_by("pk").first()
    stack = Stack.objects.create(tenant=tenant_a, environment=environment, name="shop")
    service = Service.objects.create(stack=stack, name="web", image="berth-demo/web:1.0")
    Route.objects.create(
        tenant=tenant_a, stack=stack, service=service, hostname="shop.localhost", port=8080
    )
    return stack


def add(stack, name: str, **fields) -> Container:
    host, _ = Host.objects.get_or_create(name="local", defaults={"endpoint": "unix:///x"})
    values = {"state": "running", "health": "healthy", "address": "10.1.0.9", **fields}
    return Container.objects.create(
        stack=stack, service=stack.services.get(), host=host, engine_id=name, name=name, **values
    )


@pytest.mark.django_db
def test_only_running_healthy_undrained_addressed_containers_are_servers(web_stack):
    serving = add(web_stack, "ok")
    no_check = add(web_stack, "no-check", health="")
    add(web_stack, "starting", health="starting")
    add(web_stack, "unhealthy", health="unhealthy")
    add(web_stack, "draining", draining=True)
    add(web_stack, "exited", state="exited")
    add(web_stack, "no-address", address="")

    (only,) = snapshot().routes

    assert {s.id for s in only.servers} == {serving.pk, no_check.pk}


@pytest.mark.django_db
def test_routes_of_stacks_not_meant_to_run_are_left_out(web_stack):
    add(web_stack, "ok")
    assert len(snapshot().routes) == 1

    Stack.objects.filter(pk=web_stack.pk).update(desired_state=Stack.Desired.STOPPED)

    assert snapshot().routes == ()


@pytest.mark.django_db
def test_an_active_canary_gives_its_revision_the_weight(web_stack):
    add(web_stack, "old", revision=1)
    add(web_stack, "new", revision=2)
    Rollout.objects.create(
        stack=web_stack,
        service="web",
        strategy="canary",
        state="canary",
        from_revision=1,
        to_revision=2,
        canary_weight=20,
    )
    Rollout.objects.create(
        stack=web_stack,
        service="web",
        strategy="rolling",
        state="done",
        from_revision=0,
        to_revision=1,
        finished_at=datetime.datetime.now(datetime.UTC),
    )

    (only,) = snapshot().routes

    assert (only.canary_revision, only.canary_weight) == (2, 20)
