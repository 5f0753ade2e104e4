"""The frontier with real HAProxy and real containers: routing, reloads under load,
configurations that are refused."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.conf import settings

from apps.deployments.models import Container, Rollout, Route
from apps.deployments.signals import frontier_changed
from apps.traffic import frontier as frontier_config
from apps.traffic import process, runtime
from tests.docker_cli import docker

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def served(result: frontier_config.Result) -> None:
    assert result.ok and result.reloaded, result.error


def test_route_to_a_healthy_container_answers(frontier, routed_web):
    web = routed_web("shop.localhost")
    web.add_container("1.0")

    served(frontier_config.apply("test"))

    status, body = frontier.get("shop.localhost")  # Host: shop.localhost:<port>
    assert (status, "web 1.0" in body) == (200, True)
    assert "web 1.0" in frontier.get("SHOP.localhost")[1]
    status, body = frontier.get("nobody.localhost")
    assert (status, "No route" in body) == (404, True)


def test_a_route_without_a_healthy_container_answers_503(frontier, routed_web):
    web = routed_web("empty.localhost")
    web.add_container("1.0", health="unhealthy")

    served(frontier_config.apply("test"))

    assert frontier.get("empty.localhost")[0] == 503


def test_the_longest_path_prefix_wins(frontier, routed_web):
    site = routed_web("paths.localhost", "/", name="site")
    site.add_container("1.0")
    api = routed_web("paths.localhost", "/api", name="api")
    api.add_container("1.1")
    served(frontier_config.apply("test"))

    def backend_of(path: str) -> str:
        """Which route's backend took the request (HAProxy's own counters)."""
        before = backend_totals(frontier)
        frontier.get("paths.localhost", path)
        after = backend_totals(frontier)
        (name,) = [name for name in after if after[name] != before.get(name)]
        return name

    to_api, to_site = f"r{api.route.pk}", f"r{site.route.pk}"
    assert [backend_of(p) for p in ("/api", "/api/", "/api/items?x=1", "/api/v2/x")] == [to_api] * 4
    assert [backend_of(p) for p in ("/", "/apix", "/ap", "/x/api")] == [to_site] * 4


def backend_totals(frontier) -> dict[str, int]:
    """Backend name -> requests it has taken (`stot` of `show stat`)."""
    csv = process.socket_command(frontier.directory / process.ADMIN_SOCKET, "show stat")
    header, *rows = csv.splitlines()
    names = header.lstrip("# ").split(",")
    totals = {}
    for row in rows:
        values = dict(zip(names, row.split(","), strict=False))
        if values.get("svname") == "BACKEND":
            totals[values["pxname"]] = int(values["stot"])
    return totals


def test_frontier_changed_makes_a_new_route_answer(frontier, routed_web):
    web = routed_web("signal.localhost")
    web.add_container("1.1")
    assert frontier.get("signal.localhost")[0] == 404

    frontier_changed.send(sender=None, stack_id=web.stack.pk, reason="test")

    assert "web 1.1" in frontier.get("signal.localhost")[1]


def test_a_draining_container_gets_no_new_request(frontier, routed_web):
    web = routed_web("drain.localhost")
    staying = web.add_container("1.0")
    leaving = web.add_container("1.1")
    served(frontier_config.apply("test"))

    leaving.draining = True
    leaving.save()
    served(frontier_config.apply("drain"))

    bodies = [frontier.get("drain.localhost", "/cgi-bin/info")[1] for _ in range(20)]
    assert all(staying.engine_id[:12] in body for body in bodies)


def test_a_container_that_dies_between_checks_fails_no_get(frontier, routed_web):
    # Killed without a drain: until HAProxy's checks mark it down, requests sent to it
    # fail to connect and are retried on the other container (retry-on, redispatch).
    web = routed_web("dies.localhost")
    staying = web.add_container("1.0")
    dying = web.add_container("1.1")
    served(frontier_config.apply("test"))
    assert {"web 1.0" in frontier.get("dies.localhost")[1] for _ in range(4)} == {True, False}

    docker("kill", dying.engine_id)
    docker("wait", dying.engine_id)  # gone, not dying: nothing more comes from it
    answers = [frontier.get("dies.localhost", "/cgi-bin/info", timeout=20) for _ in range(20)]

    assert [status for status, _ in answers] == [200] * 20
    assert all(staying.engine_id[:12] in body for _, body in answers)


# --- reloads under load -------------------------------------------------------------------


@dataclass
class Load:
    """Clients sending GETs through the frontier until stopped: one opens a connection
    per request (as curl does), one keeps its connection alive and, as browsers do,
    sends a request again only when a reused connection closed before any answer."""

    port: int
    host: str
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    retried: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def fresh(self) -> None:
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._get(conn)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"fresh: {exc!r}")
            finally:
                conn.close()

    def keep_alive(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            reused = conn.sock is not None
            try:
                self._get(conn)
            except (ConnectionError, http.client.RemoteDisconnected) as exc:
                conn.close()
                if not reused:
                    self.failures.append(f"keep-alive: {exc!r}")
                    continue
                self.retried += 1  # the idle connection was closed as we sent: retry
                try:
                    self._get(conn)
                except (OSError, http.client.HTTPException) as again:
                    self.failures.append(f"keep-alive retry: {again!r}")
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"keep-alive: {exc!r}")
                conn.close()
        conn.close()

    def _get(self, conn: http.client.HTTPConnection) -> None:
        conn.request("GET", "/", headers={"Host": f"{self.host}:{self.port}"})
        response = conn.getresponse()
        response.read()
        self.statuses[response.status] += 1
        if response.status != 200:
            self.failures.append(f"status {response.status}")

    def run(self, during) -> None:
        threads = [threading.Thread(target=t) for t in (self.fresh, self.fresh, self.keep_alive)]
        for thread in threads:
            thread.start()
        try:
            during()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=30)


def test_reloads_under_load_drop_no_request(frontier, routed_web):
    web = routed_web("load.localhost")
    serving = [web.add_container("1.0"), web.add_container("1.0")]
    served(frontier_config.apply("test"))
    load = Load(port=frontier.port, host="load.localhost")
    reloads = []

    def churn() -> None:
        for step in range(4):
            # A new container joins, the oldest is drained, then stopped: the drain
            # protocol, each step a reload.
            serving.append(web.add_container("1.1" if step % 2 else "1.0"))
            reloads.append(frontier_config.apply("join"))
            leaving = serving.pop(0)
            leaving.draining = True
            leaving.save()
            reloads.append(frontier_config.apply("drain"))
            time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)
            web.remove_container(leaving)
            leaving.delete()
        for _ in range(6):  # plain reloads of an unchanged configuration
            process.reload(frontier.directory)
            time.sleep(0.2)

    load.run(churn)

    assert all(r.ok and r.reloaded for r in reloads), [r.error for r in reloads]
    total = sum(load.statuses.values())
    print(f"\n{total} requests, {load.retried} keep-alive retries, during 14 reloads")
    assert load.failures == []
    assert total > 100


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers after SLOW_SECONDS, in pieces: a request still in flight at a reload."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        for _ in range(10):
            time.sleep(SLOW_SECONDS / 10)
            self.wfile.write(b"x")
            self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


SLOW_SECONDS = 2.0


def test_requests_in_flight_finish_across_reloads(frontier, routed_web):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        web = routed_web("slow.localhost")
        Route.objects.filter(pk=web.route.pk).update(port=server.server_address[1])
        Container.objects.create(
            stack=web.stack,
            service=web.service,
            host=web.host,
            engine_id="slow-loopback-server",
            name="slow",
            state="running",
            address="127.0.0.1",
        )
        served(frontier_config.apply("test"))
        answers: list[tuple[int, str] | str] = []

        def client() -> None:
            try:
                answers.append(frontier.get("slow.localhost"))
            except (OSError, http.client.HTTPException) as exc:
                answers.append(repr(exc))

        clients = [threading.Thread(target=client) for _ in range(5)]
        for client in clients:
            client.start()
        time.sleep(SLOW_SECONDS / 4)  # the requests are in flight in the old worker

        for _ in range(3):
            process.reload(frontier.directory)
        for client in clients:
            client.join(timeout=30)
    finally:
        server.shutdown()
        server.server_close()

    assert answers == [(200, "x" * 10)] * 5


# --- configurations that are refused ------------------------------------------------------


def test_a_configuration_failing_the_check_is_refused_and_the_old_one_serves(
    frontier, routed_web, settings
):
    web = routed_web("refused.localhost")
    web.add_container("1.0")
    served(frontier_config.apply("test"))
    workers = process.workers(frontier.directory)
    live = (frontier.directory / "haproxy.cfg").read_text()

    settings.BERTH_FRONTIER_EXTRA_GLOBAL = "no-such-directive on"
    web.add_container("1.1")
    result = frontier_config.apply("broken")

    assert not result.ok and not result.reloaded
    assert "haproxy -c refused" in result.error and "no-such-directive" in result.error
    assert process.workers(frontier.directory).current == workers.current
    assert (frontier.directory / "haproxy.cfg").read_text() == live
    assert "web 1.0" in frontier.get("refused.localhost")[1]
    status = frontier.status()
    assert status["ok"] is False
    assert "no-such-directive" in status["last_error"]["message"]
    assert status["last_error"]["reason"] == "broken"

    settings.BERTH_FRONTIER_EXTRA_GLOBAL = ""
    served(frontier_config.apply("fixed"))
    assert frontier.status()["ok"] is True
    assert "no-such-directive" in frontier.status()["last_error"]["message"]


def test_a_listener_that_cannot_be_bound_is_refused_and_the_old_one_serves(
    frontier, routed_web, settings
):
    # `haproxy -c` does not bind: the master's reload fails, and Berth puts the previous
    # configuration back.
    web = routed_web("unbound.localhost")
    web.add_container("1.0")
    served(frontier_config.apply("test"))
    live = (frontier.directory / "haproxy.cfg").read_text()

    settings.BERTH_FRONTIER_ADDR = "203.0.113.1:80"  # TEST-NET-3: not on this machine
    result = frontier_config.apply("unbindable")

    assert not result.ok
    assert "cannot bind" in result.error
    assert (frontier.directory / "haproxy.cfg").read_text() == live
    assert "web 1.0" in frontier.get("unbound.localhost")[1]
    assert "cannot bind" in frontier.status()["last_error"]["message"]

    settings.BERTH_FRONTIER_ADDR = frontier.addr
    result = frontier_config.apply("back")
    assert result.ok, result.error


# --- what HAProxy says about its servers --------------------------------------------------


def test_backend_status_reports_each_servers_health_from_haproxy(frontier, routed_web):
    web = routed_web("status.localhost")
    container = web.add_container("1.0")
    closed = Route.objects.create(
        tenant=web.stack.tenant,
        stack=web.stack,
        service=web.service,
        hostname="closed.localhost",
        port=8081,  # nothing listens there: the check fails
    )
    served(frontier_config.apply("test"))

    deadline = time.monotonic() + 20
    while (status := runtime.backend_status([web.route.pk, closed.pk]))[closed.pk][0][
        "status"
    ] != "DOWN" and time.monotonic() < deadline:
        time.sleep(0.2)

    (up,) = status[web.route.pk]
    assert up == {
        "server": f"c{container.pk}",
        "container_id": container.pk,
        "address": f"{container.address}:8080",
        "status": "UP",
        "weight": 1,
        "current_sessions": 0,
    }
    assert [s["status"] for s in status[closed.pk]] == ["DOWN"]
    assert runtime.backend_status([999999]) == {999999: []}


def test_a_new_canary_weight_is_served_after_the_reload(frontier, routed_web):
    # The servers' state is carried over reloads (server-state-file), but a weight the
    # configuration changes must win over the one the old worker had.
    web = routed_web("weights.localhost")
    old = web.add_container("1.0", revision=1)
    new = web.add_container("1.1", revision=2)
    rollout = Rollout.objects.create(
        stack=web.stack,
        service="web",
        strategy="canary",
        state="canary",
        from_revision=1,
        to_revision=2,
        canary_weight=20,
    )
    served(frontier_config.apply("canary"))
    weights = {
        s["container_id"]: s["weight"] for s in runtime.backend_status([web.route.pk])[web.route.pk]
    }
    assert weights == {old.pk: 4, new.pk: 1}

    rollout.canary_weight = 75
    rollout.save()
    served(frontier_config.apply("weight"))

    weights = {
        s["container_id"]: s["weight"] for s in runtime.backend_status([web.route.pk])[web.route.pk]
    }
    assert weights == {old.pk: 1, new.pk: 3}


def test_backend_status_is_empty_without_a_frontier(tmp_path):
    assert runtime.backend_status([1], directory=tmp_path) == {}


def _with_http_check(web, path: str) -> None:
    """Give the routed stack's revision a berth.yml HTTP check on `path`."""
    revision = web.stack.current_revision
    spec = dict(revision.spec)
    spec["berth"] = {"services": {"web": {"health_check": {"http": {"port": 8080, "path": path}}}}}
    revision.spec = spec
    revision.save(update_fields=["spec"])


@pytest.mark.parametrize(("path", "status"), [("/health/", "UP"), ("/missing", "DOWN")])
def test_haproxy_checks_a_declared_http_health_check_on_the_real_server(
    frontier, routed_web, path, status
):
    """HTTP/1.1 with the route's Host header: the demo's busybox httpd answers it."""
    web = routed_web(f"check{status.lower()}.localhost")
    web.add_container("1.0")
    _with_http_check(web, path)
    served(frontier_config.apply("test"))

    deadline = time.monotonic() + 20
    while (
        (found := runtime.backend_status([web.route.pk])[web.route.pk])
        and found[0]["status"] != status
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert [s["status"] for s in found] == [status]
