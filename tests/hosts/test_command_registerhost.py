"""registerhost: registers, runs one heartbeat, and explains bad input."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from apps.hosts.models import Host
from tests.hosts.conftest import free_port, missing_socket
from tests.hosts.pki import ThrowawayCA

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_admin_env")]


@pytest.fixture
def pem_files(tmp_path):
    ca = ThrowawayCA()
    client = ca.client()
    files = {}
    for option, text in [
        ("--tls-ca", ca.cert),
        ("--tls-cert", client.cert),
        ("--tls-key", client.key),
    ]:
        path = tmp_path / f"{option.strip('-')}.pem"
        path.write_text(text)
        files[option] = str(path)
    return files


@pytest.mark.engine
def test_registers_the_real_engine(run_command, settings):
    result = run_command(
        "registerhost",
        "node-1",
        settings.BERTH_DOCKER_HOST,
        "--label",
        "zone=eu-1",
        "--label",
        "disk=ssd",
    )
    host = Host.objects.get(name="node-1")
    assert host.labels == {"zone": "eu-1", "disk": "ssd"}
    assert host.state == Host.State.ACTIVE
    assert f"Registered host node-1 at {settings.BERTH_DOCKER_HOST}." in result.out
    assert f"Heartbeat: active, Docker engine {host.engine_version}" in result.out


def test_unreachable_engine_is_registered_with_a_warning(run_command, tmp_path):
    result = run_command("registerhost", "node-1", missing_socket(tmp_path))
    assert "Heartbeat: unreachable:" in result.out and "no socket file" in result.out
    assert Host.objects.get(name="node-1").state == Host.State.UNREACHABLE


def test_tls_files_are_read(run_command, pem_files, settings, tmp_path):
    settings.BERTH_STATE_DIR = tmp_path
    args = [item for pair in pem_files.items() for item in pair]
    result = run_command("registerhost", "secure", f"tcp://127.0.0.1:{free_port()}", *args)
    host = Host.objects.get(name="secure")
    assert host.uses_tls and "BEGIN" in host.tls_client_key
    assert "unreachable" in result.out
    assert "BEGIN" not in result.out  # the key is never echoed


def test_partial_tls_names_the_missing_options(run_command, pem_files):
    with pytest.raises(CommandError) as caught:
        run_command(
            "registerhost", "secure", "tcp://127.0.0.1:2376", "--tls-ca", pem_files["--tls-ca"]
        )
    assert "--tls-cert:" in str(caught.value) and "--tls-key:" in str(caught.value)
    assert not Host.objects.exists()


def test_unreadable_and_non_pem_files(run_command, pem_files, tmp_path):
    with pytest.raises(CommandError, match=r"--tls-ca: cannot read .*nope.pem"):
        run_command(
            "registerhost", "s", "tcp://127.0.0.1:2376", "--tls-ca", str(tmp_path / "nope.pem")
        )
    (tmp_path / "junk.pem").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(CommandError, match="--tls-ca: .* is not a PEM text file"):
        run_command(
            "registerhost", "s", "tcp://127.0.0.1:2376", "--tls-ca", str(tmp_path / "junk.pem")
        )
    (tmp_path / "text.pem").write_text("hello")
    with pytest.raises(CommandError, match="--tls-ca: This is not a PEM certificate."):
        run_command(
            "registerhost",
            "s",
            "tcp://127.0.0.1:2376",
            "--tls-ca",
            str(tmp_path / "text.pem"),
            "--tls-cert",
            pem_files["--tls-cert"],
            "--tls-key",
            pem_files["--tls-key"],
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node-1", "http://x:1"], "ENDPOINT: Use unix:///path/to/docker.sock or tcp://host:port."),
        (["bad name", "tcp://127.0.0.1:2376"], "NAME: Use 1-100 letters"),
        (["node-1", "tcp://127.0.0.1:2376", "--label", "novalue"], "--label: 'novalue' is not"),
        (["node-1", "tcp://127.0.0.1:2376", "--label", "bad key=x"], "--label: Label name"),
    ],
)
def test_bad_input_is_a_clear_error(run_command, args, message):
    with pytest.raises(CommandError) as caught:
        run_command("registerhost", *args)
    assert str(caught.value).startswith(message)
    assert not Host.objects.exists()


def test_duplicate_name(run_command, tmp_path):
    run_command("registerhost", "node-1", missing_socket(tmp_path))
    with pytest.raises(CommandError, match="NAME: A host with this name already exists."):
        run_command("registerhost", "node-1", "tcp://127.0.0.1:2376")
