"""Health checks as pure rules: berth.yml's check in the spec, Docker's way of judging a
probe, when an unhealthy container is replaced, and when a service is flapping."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from apps.activity.models import Event
from apps.deployments import health, probes, reconciler, tasks
from apps.deployments.health import Check, ProbeState
from apps.deployments.models import Service
from apps.hosts.engine import ManagedContainer

SPEC = {
    "project": {
        "services": {
            "web": {
                "image": "berth-demo/web:1.0",
                "healthcheck": {
                    "test": ["CMD", "true"],
                    "interval": 30.0,
                    "timeout": None,
                    "start_period": None,
                    "start_interval": None,
                    "retries": 5,
                },
            },
            "db": {"image": "postgres:16", "healthcheck": None},
        }
    }
}


def config(**services) -> dict:
    return {"services": {name: {"health_check": check} for name, check in services.items()}}


# --- berth.yml into the spec ------------------------------------------------------------------


def test_compose_form_replaces_the_compose_check_key_by_key():
    spec = health.apply_health_checks(SPEC, config(web={"test": "wget -q /", "interval": "2s"}))
    check = spec["project"]["services"]["web"]["healthcheck"]
    assert check["test"] == ["CMD-SHELL", "wget -q /"]
    assert check["interval"] == 2.0
    assert check["retries"] == 5, "a key berth.yml leaves out keeps the compose file's"
    assert SPEC["project"]["services"]["web"]["healthcheck"]["interval"] == 30.0, "not mutated"


def test_compose_form_adds_a_check_to_a_service_without_one():
    raw = {"test": ["CMD", "pg_isready"], "timeout": "1s", "start_period": "1m", "retries": 2}
    spec = health.apply_health_checks(SPEC, config(db=raw))
    check = spec["project"]["services"]["db"]["healthcheck"]
    assert check["test"] == ["CMD", "pg_isready"]
    assert (check["timeout"], check["start_period"], check["retries"]) == (1.0, 60.0, 2)
    assert health.check_of(spec, "db") == Check(
        kind="docker", interval=30.0, timeout=1.0, retries=2, start_period=60.0
    )


def test_disable_turns_every_check_off():
    spec = health.apply_health_checks(SPEC, config(web={"disable": True}))
    assert spec["project"]["services"]["web"]["healthcheck"]["test"] == ["NONE"]
    assert health.check_of(spec, "web").kind == "none"


def test_a_probe_turns_dockers_check_off_and_is_kept_for_the_prober():
    raw = {"http": {"port": 8080, "path": "/health"}, "interval": "2s", "retries": 2}
    spec = health.apply_health_checks(SPEC, config(web=raw))
    assert spec["project"]["services"]["web"]["healthcheck"]["test"] == ["NONE"]
    assert spec["berth"]["services"]["web"]["health_check"] == raw
    assert health.check_of(spec, "web") == Check(
        kind="http", port=8080, path="/health", interval=2.0, timeout=2.0, retries=2
    )
    assert health.probed_services(spec) == {"web"}


def test_a_tcp_probe_has_berths_defaults():
    spec = health.apply_health_checks(SPEC, config(db={"tcp": {"port": 5432}}))
    assert health.check_of(spec, "db") == Check(
        kind="tcp",
        port=5432,
        interval=health.PROBE_INTERVAL,
        timeout=health.PROBE_TIMEOUT,
        retries=health.PROBE_RETRIES,
    )


def test_existing_berth_settings_are_kept_beside_the_check():
    spec = {**SPEC, "berth": {"services": {"web": {"routes": [{"hostname": "a.test"}]}}}}
    out = health.apply_health_checks(spec, config(web={"tcp": {"port": 80}}))
    assert out["berth"]["services"]["web"]["routes"] == [{"hostname": "a.test"}]
    assert out["berth"]["services"]["web"]["health_check"] == {"tcp": {"port": 80}}


def test_no_berth_check_leaves_the_spec_alone():
    assert health.apply_health_checks(SPEC, None) is SPEC
    assert health.apply_health_checks(SPEC, {"services": {"web": {"scale": 2}}}) is SPEC
    assert health.apply_health_checks(SPEC, config(gone={"disable": True})) is SPEC


def test_a_spec_without_any_check_uses_dockers_defaults():
    assert health.check_of(SPEC, "db") == Check(kind="none")
    assert health.check_of(SPEC, "web").threshold == 5 * 30.0


# --- a probe's outcome --------------------------------------------------------------------------

CHECK = Check(kind="http", port=80, interval=2.0, retries=3, start_period=10.0)


def run(outcomes: list[bool], started: float = 0.0, start: float = 12.0) -> ProbeState:
    state = ProbeState()
    for step, ok in enumerate(outcomes):
        state = health.after_probe(state, ok, "why", CHECK, started, start + 2.0 * step)
    return state


def test_retries_failures_in_a_row_make_a_container_unhealthy():
    assert run([False, False]).health == "starting"
    state = run([False, False, False])
    assert (state.health, state.failures, state.since) == ("unhealthy", 3, 16.0)
    assert run([False, False, False, False]).since == 16.0, "since stays the first time"


def test_a_success_makes_it_healthy_and_forgets_the_failures():
    assert run([False, False, True]) == ProbeState(health="healthy", reason="why", last=16.0)
    assert run([True, False, False]).health == "healthy"
    assert run([True, False, False, False]).health == "unhealthy"


def test_failures_during_the_start_period_do_not_count():
    assert run([False] * 5, start=0.0).health == "starting"
    assert run([False] * 8, start=0.0).health == "unhealthy"  # 10 s, then 3 failures


def test_a_probe_is_due_once_per_interval():
    assert not health.due(ProbeState(last=10.0), CHECK, 0.0, 11.9)
    assert health.due(ProbeState(last=10.0), CHECK, 0.0, 12.0)


def test_the_first_probe_is_a_second_after_the_start():
    assert not health.due(None, CHECK, 100.0, 100.9)
    assert health.due(None, CHECK, 100.0, 101.0)
    assert health.due(ProbeState(), CHECK, 100.0, 101.0)
    fast = Check(kind="tcp", port=1, interval=0.5)
    assert health.due(None, fast, 100.0, 100.5)


def test_unhealthy_since_is_the_first_pass_that_saw_it():
    assert health.unhealthy_since("unhealthy", 0.0, 50.0) == 50.0
    assert health.unhealthy_since("unhealthy", 40.0, 50.0) == 40.0
    assert health.unhealthy_since("healthy", 40.0, 50.0) == 0.0


# --- replacement and flapping -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "now", "replaced"),
    [
        (0.0, 1000.0, False),  # not unhealthy
        (20.0, 25.9, False),  # 3 x 2 s not passed yet
        (20.0, 26.0, True),
        (2.0, 15.0, False),  # counted from the end of the start period (10 s)
        (2.0, 16.0, True),
    ],
)
def test_replaced_when_unhealthy_past_retries_times_interval(since, now, replaced):
    assert health.past_threshold(CHECK, 0.0, since, now) is replaced


NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def ago(**delta) -> str:
    return (NOW - timedelta(**delta)).isoformat()


def test_replacements_keep_the_last_hour_newest_last():
    kept = health.record_replacement([ago(hours=2), ago(minutes=30), "garbage"], NOW)
    assert kept == [ago(minutes=30), NOW.isoformat()]


def test_three_replacements_within_ten_minutes_is_flapping():
    assert not health.is_flapping([ago(minutes=9), ago(minutes=1)], NOW)
    assert health.is_flapping([ago(minutes=9), ago(minutes=5), ago(minutes=1)], NOW)
    assert not health.is_flapping([ago(minutes=11), ago(minutes=5), ago(minutes=1)], NOW)
    assert health.flapping_count([ago(minutes=9), ago(minutes=5), ago(minutes=1)], NOW) == 3


def test_flapping_clears_after_ten_minutes_without_a_replacement():
    replaced = [ago(minutes=14), ago(minutes=12), ago(minutes=10, seconds=1)]
    assert not health.is_flapping(replaced, NOW)


def test_a_flapping_service_is_replaced_at_most_once_a_minute():
    recent = [ago(minutes=3), ago(minutes=2), ago(seconds=30)]
    assert health.may_replace(recent, False, NOW), "not flapping: no backoff"
    assert not health.may_replace(recent, True, NOW)
    assert health.may_replace([*recent[:2], ago(seconds=60)], True, NOW)


# --- the API shows it -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_shows_flapping_and_recent_replacements(api_as, member, stack):
    web = stack.services.get(name="web")
    now = timezone.now()
    web.replacements = [
        (now - timedelta(hours=2)).isoformat(),  # older than an hour: not counted
        (now - timedelta(minutes=4)).isoformat(),
        (now - timedelta(minutes=2)).isoformat(),
        (now - timedelta(minutes=1)).isoformat(),
    ]
    web.flapping = True
    web.save()

    api, _ = api_as(member)
    data = api.get(f"/api/v1/services/{web.pk}/").json()
    assert (data["flapping"], data["replacements"]) == (True, 3)
    assert data["last_replaced_at"] == web.replacements[-1]
    listed = api.get(f"/api/v1/stacks/{stack.pk}/").json()["services"]
    assert {s["name"]: s["flapping"] for s in listed} == {"web": True, "worker": False}


# --- probes: where they go and what they judge --------------------------------------------------


def listed(**addresses: str) -> ManagedContainer:
    return ManagedContainer(
        id="c1", name="c1", image="i", state="running", status="Up", addresses=addresses
    )


def test_a_probe_goes_only_to_the_containers_own_address():
    assert probes.address_of(listed(envnet="10.213.0.5", stacknet="10.213.1.5"), "envnet") == (
        "10.213.0.5"
    )
    assert probes.address_of(listed(other="10.213.2.7"), "envnet") == "", "never another network"
    for refused in ("127.0.0.1", "0.0.0.0", "169.254.169.254", "::1", "224.0.0.1", "x"):
        assert probes.address_of(listed(envnet=refused), "envnet") == "", refused
    assert probes.probe(Check(kind="tcp", port=80), listed(), "envnet") == (
        False,
        "no address on the environment network",
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path == "/slow":
            time.sleep(1)
        status = {"/ok": 200, "/slow": 200, "/moved": 302}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "http://127.0.0.1:9/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "expect", "passed", "said"),
    [
        ("/ok", None, True, "GET /ok on port {port} answered 200"),
        ("/moved", None, True, "GET /moved on port {port} answered 302"),
        ("/moved", 200, False, "GET /moved on port {port} answered 302 (wanted 200)"),
        ("/missing", None, False, "GET /missing on port {port} answered 404 (wanted 2xx or 3xx)"),
        ("/missing", 404, True, "GET /missing on port {port} answered 404"),
        ("/slow", None, False, "GET /slow on port {port}: no answer in time"),
    ],
)
def test_http_probe_judges_the_status_and_follows_no_redirect(server, path, expect, passed, said):
    found = probes.probe_http("127.0.0.1", server, path, expect, timeout=0.3)
    assert found == (passed, said.format(port=server))


def test_tcp_probe(server):
    assert probes.probe_tcp("127.0.0.1", server, 1.0) == (
        True,
        f"port {server} accepts connections",
    )
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    assert probes.probe_tcp("127.0.0.1", closed, 1.0) == (
        False,
        f"port {closed}: connection refused",
    )


# --- the reconciler's wait, the store, flapping clearing ----------------------------------------


def test_the_wait_for_health_judges_with_the_probe_when_given_one():
    up = ManagedContainer(id="a", name="a", image="i", state="running", status="Up 1 second")
    assert reconciler._condition_met([up], 1, "service_healthy", "web") is True
    assert (
        reconciler._condition_met([up], 1, "service_healthy", "web", lambda c: "starting") is None
    )
    assert reconciler._condition_met([up], 1, "service_healthy", "web", lambda c: "healthy")
    refused = reconciler._condition_met([up], 1, "service_healthy", "web", lambda c: "unhealthy")
    assert refused == "web is unhealthy, so the services that depend on it were not started"


def test_probe_states_are_kept_per_container():
    store = probes.ProbeStore()
    state = ProbeState(health="unhealthy", reason="GET / answered 500", failures=3, since=5.0)
    store.put("c-kept", state)
    assert store.get_many(["c-kept", "c-other"]) == {"c-kept": state}
    store.forget(["c-kept"])
    assert store.get_many(["c-kept"]) == {}


def test_without_redis_the_store_finds_nothing_and_fails_nothing(settings):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    store = probes.ProbeStore()
    store.put("c1", ProbeState())
    assert store.get_many(["c1"]) == {}


@pytest.mark.django_db
def test_flapping_clears_after_a_window_without_replacement(stack):
    web, worker = stack.services.get(name="web"), stack.services.get(name="worker")
    now = timezone.now()
    web.replacements = [(now - timedelta(minutes=m)).isoformat() for m in (14, 12, 11)]
    worker.replacements = [(now - timedelta(minutes=m)).isoformat() for m in (9, 5, 1)]
    Service.objects.filter(pk__in=[web.pk, worker.pk]).update(flapping=True)
    Service.objects.filter(pk=web.pk).update(replacements=web.replacements)
    Service.objects.filter(pk=worker.pk).update(replacements=worker.replacements)

    assert [s.name for s in probes.clear_flapping([stack.pk])] == ["web"]
    assert not Service.objects.get(pk=web.pk).flapping
    assert Service.objects.get(pk=worker.pk).flapping
    cleared = Event.objects.get(action="service.flapping_cleared")
    assert cleared.data == {"stack": stack.pk, "service": "web"}


def test_beat_runs_the_health_pass_with_time_limits(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["deployments.check_health"]
    assert entry == {
        "task": tasks.check_health_all.name,
        "schedule": settings.BERTH_HEALTH_SECONDS,
        # Still queued when the next one is due (busy workers): skipped, not run stale.
        "options": {"expires": settings.BERTH_HEALTH_SECONDS},
    }
    limits = settings.CELERY_TASK_ANNOTATIONS[tasks.check_health.name]
    assert limits["soft_time_limit"] < limits["time_limit"]
