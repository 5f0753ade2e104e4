"""apply() without HAProxy running: what it writes, and how it waits for another apply."""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.traffic import frontier, process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_folder(settings, tmp_path):
    settings.BERTH_FRONTIER_DIR = tmp_path


def test_apply_without_a_running_frontier_writes_what_a_start_will_use(tmp_path):
    result = frontier.apply("first")

    assert result.ok and not result.reloaded
    assert "frontend http" in (tmp_path / "haproxy.cfg").read_text()
    assert process.check(tmp_path / "haproxy.cfg") == ""
    assert frontier.read_status(tmp_path)["reason"] == "first"


def test_an_apply_waits_a_bounded_time_for_another_one(monkeypatch, tmp_path):
    monkeypatch.setattr(frontier, "LOCK_WAIT_SECONDS", 0.3)
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [frontier.ADVISORY_KEY])

        result = frontier.apply("while another runs")

        assert not result.ok
        assert "another frontier apply held the lock" in result.error
        assert frontier.read_status(tmp_path)["last_error"]["reason"] == "while another runs"
        other.execute("SELECT pg_advisory_unlock(%s)", [frontier.ADVISORY_KEY])

    assert frontier.apply("after it").ok


# --- manage.py frontier ------------------------------------------------------------------


def test_frontier_render_writes_a_configuration_haproxy_accepts(tmp_path):
    out = io.StringIO()

    call_command("frontier", "render", "--output", str(tmp_path / "candidate.cfg"), stdout=out)

    assert out.getvalue().strip() == str(tmp_path / "candidate.cfg")
    assert process.check(tmp_path / "candidate.cfg") == ""
    assert not (tmp_path / "haproxy.cfg").exists()  # render never installs


def test_frontier_apply_and_status_say_what_happened(settings):
    out = io.StringIO()
    call_command("frontier", "apply", "--reason", "by hand", stdout=out)
    assert "frontier written (no frontier running): 0 routes, 0 servers" in out.getvalue()

    out = io.StringIO()
    call_command("frontier", "status", stdout=out)
    report = json.loads(out.getvalue())
    assert report["running"] is False
    assert report["status"]["reason"] == "by hand"

    settings.BERTH_FRONTIER_EXTRA_GLOBAL = "no-such-directive on"
    with pytest.raises(CommandError, match="no-such-directive"):
        call_command("frontier", "apply", stdout=io.StringIO())


def test_an_apply_that_cannot_run_haproxy_is_recorded_not_raised(monkeypatch, tmp_path):
    """A missing binary (or a check that times out) is a failed apply on the status
    page, never an exception in the reconcile or the operator's Apply button."""
    monkeypatch.setattr(process, "HAPROXY", str(tmp_path / "no-such-haproxy"))

    result = frontier.apply("no haproxy")

    assert not result.ok
    assert result.error.startswith("FileNotFoundError")
    assert frontier.read_status(tmp_path)["last_error"]["reason"] == "no haproxy"
