"""The log collector on the real engine: every line stored once, in order, across crashes.

A stack's container prints numbered lines on stdout and stderr; collection passes copy
them into the store. A pass killed (SIGKILL, in a subprocess) between its commits, then
run again, leaves every number stored exactly once; two passes at once do too; the lines
of a removed container stay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from apps.deployments import reconciler, services
from apps.logs import collector
from apps.logs.models import LogLine, LogSource
from tests.fixtures.engine import docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

# `$$` is compose's escape for a literal `$`. stdout and stderr both numbered 1..N.
COUNTER = """
services:
  counter:
    image: ${IMAGE}
    command:
      - sh
      - -c
      - i=1; while [ $$i -le ${LINES} ]; do echo out $$i; echo err $$i >&2; i=$$((i+1)); done;
        exec sleep 3600
    stop_grace_period: 1s
"""


def deploy_counter(environment, image, lines: int, name: str = "counter"):
    stack = make_stack(environment, name, COUNTER, {"IMAGE": image, "LINES": str(lines)})
    reconciler.reconcile_stack(stack.pk)
    (container,) = engine_containers(stack)
    wait_for_lines(container["Id"], lines)
    return stack, container["Id"]


def wait_for_lines(container_id: str, lines: int, timeout: float = 30) -> None:
    """Until the container printed its last lines (the whole log is read: the engine
    copies stdout and stderr in chunks, so their last lines may be far apart in the file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["docker", "-H", settings.BERTH_DOCKER_HOST, "logs", container_id],
            capture_output=True,
            text=True,
        )
        if f"out {lines}\n" in done.stdout and f"err {lines}\n" in done.stderr:
            break
        time.sleep(0.2)
    time.sleep(settings.BERTH_LOG_SETTLE_SECONDS + 0.1)  # past the collector's settle time


def numbers(container_id: str, stream: str) -> list[int]:
    texts = LogLine.objects.filter(source__engine_id=container_id, stream=stream).order_by("pk")
    return [int(text.split()[1]) for text in texts.values_list("text", flat=True)]


def assert_exactly_once(container_id: str, lines: int) -> None:
    expected = list(range(1, lines + 1))
    assert numbers(container_id, "stdout") == expected
    assert numbers(container_id, "stderr") == expected


def run_pass(host_id: int, container_id: str) -> collector.PassResult:
    return collector.collect_host(host_id, only=[container_id])


def test_lines_are_stored_once_in_order_with_their_labels(environment, image, host):
    stack, cid = deploy_counter(environment, image, 300)
    first = run_pass(host.pk, cid)
    assert first.lines == 600 and not first.errors
    assert_exactly_once(cid, 300)
    line = LogLine.objects.filter(source__engine_id=cid).first()
    assert (line.tenant_id, line.environment_id) == (stack.tenant_id, stack.environment_id)
    assert (line.stack, line.service) == ("counter", "counter")
    # A second pass finds nothing new: the cursor sits after the last line.
    assert run_pass(host.pk, cid).lines == 0
    assert_exactly_once(cid, 300)


def test_new_lines_are_appended_after_the_cursor(environment, image, host):
    _, cid = deploy_counter(environment, image, 50)
    run_pass(host.pk, cid)
    docker("exec", cid, "sh", "-c", "for i in 51 52 53; do echo out $i > /proc/1/fd/1; done")
    time.sleep(settings.BERTH_LOG_SETTLE_SECONDS + 0.2)
    assert run_pass(host.pk, cid).lines == 3
    assert numbers(cid, "stdout") == list(range(1, 54))


def test_a_pass_killed_between_commits_resumes_without_gap_or_duplicate(environment, image, host):
    lines = 20000
    _, cid = deploy_counter(environment, image, lines)
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "paas.settings",
        "BERTH_LOG_BATCH_LINES": "500",
    }
    code = (
        "import django; django.setup(); from apps.logs import collector; "
        f"collector.collect_host({host.pk}, only=[{cid!r}])"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.poll() is None:
            if LogLine.objects.filter(source__engine_id=cid).count() >= 1000:
                break
            time.sleep(0.01)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    stored = LogLine.objects.filter(source__engine_id=cid).count()
    assert 0 < stored < 2 * lines, f"the kill came too late to test anything ({stored} lines)"
    source = LogSource.objects.get(engine_id=cid)
    assert source.claimed_by  # the dead pass still holds the lease: a new pass waits
    assert run_pass(host.pk, cid).skipped == 1
    LogSource.objects.filter(pk=source.pk).update(claimed_until=None)

    run_pass(host.pk, cid)
    assert_exactly_once(cid, lines)
    connection.close()


def test_a_crash_after_fetching_before_committing_loses_nothing(
    environment, image, host, monkeypatch, settings
):
    settings.BERTH_LOG_BATCH_LINES = 100
    _, cid = deploy_counter(environment, image, 1000)
    commits = []
    real_commit = collector.commit

    def crash_on_the_fourth(*args, **kwargs):
        if len(commits) == 3:
            raise RuntimeError("worker lost")
        commits.append(1)
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(collector, "commit", crash_on_the_fourth)
    with pytest.raises(RuntimeError):
        run_pass(host.pk, cid)
    assert LogLine.objects.filter(source__engine_id=cid).count() == 300
    monkeypatch.setattr(collector, "commit", real_commit)
    run_pass(host.pk, cid)
    assert_exactly_once(cid, 1000)


def test_two_passes_at_once_store_each_line_once(environment, image, host):
    import threading

    if connection.vendor == "sqlite":
        pytest.skip("SQLite's in-memory test database refuses a second writer thread at once")

    _, cid = deploy_counter(environment, image, 3000)
    errors = []

    def one_pass():
        try:
            run_pass(host.pk, cid)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    run_pass(host.pk, cid)  # whatever a skipped pass left
    assert_exactly_once(cid, 3000)


def test_a_removed_containers_lines_stay(environment, image, host):
    stack, cid = deploy_counter(environment, image, 20)
    run_pass(host.pk, cid)
    docker("rm", "-f", cid)
    collector.collect_host(host.pk)
    assert LogSource.objects.get(engine_id=cid).gone_at is not None
    assert LogLine.objects.filter(source__engine_id=cid).count() == 40


# Lines 1..N, then on SIGTERM a last line (what a service says as it stops).
LAST_WORDS = """
services:
  talker:
    image: ${IMAGE}
    command:
      - sh
      - -c
      - trap 'echo goodbye from $$HOSTNAME; exit 0' TERM;
        i=1; while [ $$i -le ${LINES} ]; do echo out $$i; i=$$((i+1)); done;
        while :; do sleep 0.2; done
    stop_grace_period: 5s
"""


def test_a_container_berth_removes_keeps_its_lines_to_the_last(environment, image, host, owner):
    """Scaled in by the reconciler with no pass since its lines were written (nor any
    pass at all for the container): its whole log, its last words included, is stored."""
    stack = make_stack(environment, "talker", LAST_WORDS, {"IMAGE": image, "LINES": "40"})
    reconciler.reconcile_stack(stack.pk)
    (container,) = engine_containers(stack)
    cid = container["Id"]
    deadline = time.monotonic() + 30
    while "out 40" not in docker("logs", cid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not LogSource.objects.filter(engine_id=cid).exists()  # no pass has seen it

    services.scale(owner, stack.services.get(name="talker"), 0)
    reconciler.reconcile_stack(stack.pk)
    assert not engine_containers(stack), "scaled in: the container is removed"
    texts = list(
        LogLine.objects.filter(source__engine_id=cid).order_by("pk").values_list("text", flat=True)
    )
    assert texts[:40] == [f"out {i}" for i in range(1, 41)]
    assert texts[40:] == [f"goodbye from {cid[:12]}"]
    assert LogLine.objects.filter(source__engine_id=cid, tenant=stack.tenant).count() == 41


def test_a_stopped_container_is_read_to_its_end_once_until_it_runs_again(
    environment, image, host, monkeypatch, settings
):
    """A stopped container's log cannot grow: once a pass has read it to the end, later
    passes leave the engine alone; started again, its new run is read. A pass stopped
    by its cap has not read to the end."""
    from apps.hosts.engine.client import DockerEngine

    _, cid = deploy_counter(environment, image, 30)
    calls = []
    real_logs = DockerEngine.logs
    monkeypatch.setattr(
        DockerEngine,
        "logs",
        lambda self, cid_, **kw: calls.append(cid_) or real_logs(self, cid_, **kw),
    )
    docker("stop", cid)
    settings.BERTH_LOG_BATCH_LINES, settings.BERTH_LOG_MAX_LINES_PER_PASS = 40, 40
    capped = run_pass(host.pk, cid)
    assert (capped.lines, capped.ended, len(calls)) == (40, 0, 1)
    assert LogSource.objects.get(engine_id=cid).ended == ""  # stopped by the cap
    settings.BERTH_LOG_MAX_LINES_PER_PASS = 10_000
    first = run_pass(host.pk, cid)
    assert (first.lines, first.ended, len(calls)) == (20, 0, 2)
    assert LogSource.objects.get(engine_id=cid).ended.startswith("run ")
    again = run_pass(host.pk, cid)
    assert (again.lines, again.ended, len(calls)) == (0, 1, 2), "not read again"

    docker("start", cid)
    deadline = time.monotonic() + 30
    while docker("logs", cid).split("\n").count("out 30") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # until the new run printed its 30 again
    docker("stop", cid)
    restarted = run_pass(host.pk, cid)
    assert (restarted.lines, restarted.ended, len(calls)) == (60, 0, 3)
    assert numbers(cid, "stdout") == list(range(1, 31)) * 2
    assert run_pass(host.pk, cid).ended == 1 and len(calls) == 3


def test_a_resumed_pass_reads_the_log_from_its_end_unless_too_much_is_new(
    environment, image, host, monkeypatch, settings
):
    """The engine finds `since` by decoding the whole log from its start; its `tail` reads
    from the end. A resumed pass takes the log's last lines when they reach back to what
    the last pass stored, and reads with `since` when more was written than that tail
    holds."""
    from apps.hosts.engine.client import DockerEngine

    settings.BERTH_LOG_TAIL_LINES = 20
    settle = settings.BERTH_LOG_SETTLE_SECONDS
    _, cid = deploy_counter(environment, image, 300)
    time.sleep(settle + 0.2)  # the first pass then stores up to past the settle time
    assert run_pass(host.pk, cid).lines == 600
    calls = []
    real_logs = DockerEngine.logs
    monkeypatch.setattr(
        DockerEngine,
        "logs",
        lambda self, cid_, **kw: calls.append(kw["tail"]) or real_logs(self, cid_, **kw),
    )
    docker("exec", cid, "sh", "-c", "for i in 301 302 303; do echo out $i > /proc/1/fd/1; done")
    time.sleep(settle + 0.2)
    assert run_pass(host.pk, cid).lines == 3
    assert calls == ["20"], "the tail reaches back to what is stored: it alone"
    assert numbers(cid, "stdout") == list(range(1, 304))

    calls.clear()
    script = "i=304; while [ $i -le 353 ]; do echo out $i > /proc/1/fd/1; i=$((i+1)); done"
    docker("exec", cid, "sh", "-c", script)
    time.sleep(settle + 0.2)
    assert run_pass(host.pk, cid).lines == 50
    assert calls == ["20", "all"], "50 new lines: the tail does not reach back"
    assert numbers(cid, "stdout") == list(range(1, 354))
    assert numbers(cid, "stderr") == list(range(1, 301))
