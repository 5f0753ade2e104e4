"""The engine driver against the real Docker engine (and loopback servers for failures)."""

from __future__ import annotations

import os
import stat
import time
from types import SimpleNamespace

import pytest
from django.conf import settings

from apps.hosts.engine import MANAGED_LABEL, EngineError, get_engine, managed_labels
from tests.hosts.conftest import RUN_ID, RUN_LABEL, docker_cli, free_port, missing_socket
from tests.hosts.pki import ThrowawayCA


def fake_host(endpoint: str, pk=None, **tls) -> SimpleNamespace:
    """The fields get_engine reads; a plain object so these tests need no database."""
    fields = {
        "kind": "engine",
        "tls_ca_cert": "",
        "tls_client_cert": "",
        "tls_client_key": "",
        "tls_verify": True,
    }
    fields.update(tls)
    return SimpleNamespace(pk=pk, endpoint=endpoint, **fields)


def failure(host: SimpleNamespace, method: str = "info") -> EngineError:
    """The EngineError that calling `method` on the host's engine raises."""
    with get_engine(host) as eng, pytest.raises(EngineError) as caught:
        getattr(eng, method)()
    return caught.value


@pytest.fixture
def engine():
    with get_engine(fake_host(settings.BERTH_DOCKER_HOST)) as eng:
        yield eng


@pytest.mark.engine
def test_info_reports_the_real_engine(engine):
    info = engine.info()
    assert info.engine_version == docker_cli("version", "--format", "{{.Server.Version}}")
    assert info.api_version == docker_cli("version", "--format", "{{.Server.APIVersion}}")
    assert info.operating_system
    assert info.cpus >= 1
    assert info.memory_bytes > 0
    assert 0 <= info.containers_running <= info.containers_total
    engine.ping()


@pytest.mark.engine
def test_list_managed_filters_by_berth_labels(engine, run_container):
    tenant = f"t-{RUN_ID}"
    managed = run_container("managed", {**managed_labels({"tenant": tenant}), RUN_LABEL: RUN_ID})
    unmanaged = run_container("plain", {RUN_LABEL: RUN_ID, "io.berth.tenant": tenant})

    found = engine.list_managed({"tenant": tenant})
    assert [c.id for c in found] == [managed]
    container = found[0]
    assert container.name == f"berth-test-{RUN_ID}-managed"
    assert container.state == "running"
    assert container.labels[MANAGED_LABEL] == "true"
    assert container.labels["io.berth.tenant"] == tenant
    assert container.labels["io.berth.test"] == "1"  # inherited from the test image

    by_run = {c.id for c in engine.list_managed({"io.berth.test.run": RUN_ID})}
    assert managed in by_run and unmanaged not in by_run
    anywhere = {c.id for c in engine.list_managed({"tenant": None})}
    assert managed in anywhere and unmanaged not in anywhere
    assert engine.list_managed({"tenant": f"other-{RUN_ID}"}) == []


@pytest.mark.engine
def test_list_managed_includes_stopped_containers(engine, run_container):
    tenant = f"s-{RUN_ID}"
    cid = run_container("stopped", {**managed_labels({"tenant": tenant}), RUN_LABEL: RUN_ID})
    docker_cli("kill", cid)
    docker_cli("wait", cid)
    [container] = engine.list_managed({"tenant": tenant})
    assert container.state == "exited"


@pytest.mark.engine
def test_watch_hears_the_start_and_death_of_matching_containers_only(engine, run_container):
    tenant = f"w-{RUN_ID}"
    with engine.watch({"tenant": tenant}) as events:
        assert not events.wait(0)  # subscribed, nothing yet
        run_container("unwatched", {**managed_labels({"tenant": f"x-{RUN_ID}"}), RUN_LABEL: RUN_ID})
        cid = run_container("watched", {**managed_labels({"tenant": tenant}), RUN_LABEL: RUN_ID})
        docker_cli("kill", cid)
        docker_cli("wait", cid)
        seen: list[tuple[str, str]] = []
        while len(seen) < 2 and events.wait(60):
            seen = [(e["id"], e["Action"]) for e in events.seen]
    assert seen == [(cid, "start"), (cid, "die")]


def test_missing_socket_is_a_retryable_error(tmp_path):
    endpoint = missing_socket(tmp_path)
    error = failure(fake_host(endpoint))
    assert error.retryable
    assert endpoint in str(error)
    assert "no socket file" in str(error)


def test_refused_tcp_port_is_a_retryable_error():
    error = failure(fake_host(f"tcp://127.0.0.1:{free_port()}"), "ping")
    assert error.retryable
    assert "connection refused" in str(error)


def test_silent_engine_times_out_as_retryable(settings, silent_port):
    settings.BERTH_ENGINE_TIMEOUT = 1
    started = time.monotonic()
    error = failure(fake_host(f"tcp://127.0.0.1:{silent_port}"), "info")
    assert time.monotonic() - started < 5
    assert error.retryable
    assert "did not answer within 1s" in str(error)


def test_a_4xx_answer_is_not_retryable(refusing_server):
    error = failure(fake_host(f"tcp://127.0.0.1:{refusing_server}"), "ping")
    assert not error.retryable
    assert error.status == 403
    assert "forbidden by test server" in str(error)


def tls_fields(ca: ThrowawayCA) -> dict[str, str]:
    client = ca.client()
    return {"tls_ca_cert": ca.cert, "tls_client_cert": client.cert, "tls_client_key": client.key}


def test_tls_material_is_written_privately(settings, tmp_path):
    settings.BERTH_STATE_DIR = tmp_path
    fields = tls_fields(ThrowawayCA())
    host = fake_host(f"tcp://127.0.0.1:{free_port()}", pk=42, **fields)
    get_engine(host).close()
    folder = tmp_path / "tls" / "42"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name, field in [
        ("ca.pem", "tls_ca_cert"),
        ("cert.pem", "tls_client_cert"),
        ("key.pem", "tls_client_key"),
    ]:
        path = folder / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == fields[field].strip()
    inode = (folder / "key.pem").stat().st_ino
    get_engine(host).close()  # same material: files are left alone
    assert (folder / "key.pem").stat().st_ino == inode
    assert sorted(os.listdir(folder)) == ["ca.pem", "cert.pem", "key.pem"]


def test_unsaved_host_tls_folder_is_removed_on_close(settings, tmp_path):
    settings.BERTH_STATE_DIR = tmp_path
    host = fake_host(f"tcp://127.0.0.1:{free_port()}", **tls_fields(ThrowawayCA()))
    get_engine(host).close()
    assert os.listdir(tmp_path / "tls") == []


def test_tls_client_certificate_reaches_the_server(settings, tmp_path, tls_refusing_server):
    """With the right CA and client certificate the handshake succeeds (the server's 403
    comes back); with another CA's material the handshake fails, retryable, and says so."""
    settings.BERTH_STATE_DIR = tmp_path
    ca, port = tls_refusing_server
    endpoint = f"tcp://127.0.0.1:{port}"
    error = failure(fake_host(endpoint, pk=1, **tls_fields(ca)), "ping")
    assert error.status == 403 and not error.retryable

    error = failure(fake_host(endpoint, pk=2, **tls_fields(ThrowawayCA())), "ping")
    assert error.retryable
    assert "TLS certificate was not accepted" in str(error)


def test_label_keys_are_kept_under_the_prefix():
    assert managed_labels({"tenant": "acme", "io.berth.stack": "web"}) == {
        "io.berth.managed": "true",
        "io.berth.installation": settings.BERTH_INSTALLATION_ID,
        "io.berth.tenant": "acme",
        "io.berth.stack": "web",
    }
    with pytest.raises(ValueError):
        managed_labels({"": "x"})
