"""register_host / update_host / remove_host / set_draining: validation, rights, Events."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.activity.models import Event
from apps.hosts import services
from apps.hosts.models import Host
from tests.hosts.pki import ThrowawayCA

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pki():
    ca = ThrowawayCA()
    return ca, ca.client()


def tls(pki) -> dict[str, str]:
    ca, client = pki
    return {"tls_ca_cert": ca.cert, "tls_client_cert": client.cert, "tls_client_key": client.key}


def refused(**kwargs) -> dict[str, list[str]]:
    fields = {"actor": None, "name": "node-1", "endpoint": "tcp://127.0.0.1:2376"}
    fields.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        services.register_host(**fields)
    assert not Host.objects.filter(name=fields["name"]).exists()
    return caught.value.message_dict


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "http://127.0.0.1:2375",
        "docker.sock",
        "unix://relative/docker.sock",
        "unix://",
        "tcp://127.0.0.1",
        "tcp://:2376",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:70000",
        "tcp://127.0.0.1:port",
        "tcp://127.0.0.1:2376/v1.41",
        "tcp://user@127.0.0.1:2376",
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(endpoint):
    errors = refused(endpoint=endpoint)
    assert list(errors) == ["endpoint"]
    assert errors["endpoint"][0]


@pytest.mark.parametrize(
    "endpoint", ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "tcp://[::1]:2375"]
)
def test_good_endpoints_are_accepted(endpoint):
    host = services.register_host(actor=None, name="node-1", endpoint=endpoint)
    assert host.state == Host.State.PENDING and host.endpoint == endpoint


@pytest.mark.parametrize("name", ["", " ", "two words", "-dash", "x" * 101, "semi;colon"])
def test_bad_names_are_refused(name):
    assert "name" in refused(name=name)


def test_names_and_endpoints_are_unique():
    services.register_host(actor=None, name="node-1", endpoint="tcp://127.0.0.1:2376")
    with pytest.raises(ValidationError) as caught:
        services.register_host(actor=None, name="node-1", endpoint="tcp://127.0.0.1:2377")
    assert caught.value.message_dict["name"] == ["A host with this name already exists."]
    with pytest.raises(ValidationError) as caught:
        services.register_host(actor=None, name="node-2", endpoint="tcp://127.0.0.1:2376")
    assert "node-1 already uses this endpoint" in caught.value.message_dict["endpoint"][0]


def test_tls_material_is_all_or_nothing(pki):
    material = tls(pki)
    errors = refused(tls_ca_cert=material["tls_ca_cert"])
    assert set(errors) == {"tls_client_cert", "tls_client_key"}
    errors = refused(tls_client_key=material["tls_client_key"])
    assert set(errors) == {"tls_ca_cert", "tls_client_cert"}


def test_tls_material_must_parse(pki):
    errors = refused(**{**tls(pki), "tls_ca_cert": "-----BEGIN CERTIFICATE-----\nnope\n"})
    assert errors == {"tls_ca_cert": ["This is not a PEM certificate."]}
    errors = refused(**{**tls(pki), "tls_client_key": "not a key"})
    assert errors == {"tls_client_key": ["This is not an unencrypted PEM private key."]}


def test_tls_key_must_match_the_certificate(pki):
    other = ThrowawayCA().client()
    errors = refused(**{**tls(pki), "tls_client_key": other.key})
    assert errors == {"tls_client_key": ["This key does not belong to the client certificate."]}


def test_tls_on_a_unix_socket_is_refused(pki):
    errors = refused(endpoint="unix:///var/run/docker.sock", **tls(pki))
    assert "only used with tcp://" in next(iter(errors.values()))[0]


@pytest.mark.parametrize("labels", [["a"], {"bad key": "x"}, {"zone": 3}, {"zone": "x" * 256}])
def test_bad_labels_are_refused(labels):
    assert "labels" in refused(labels=labels)


def test_register_with_tls_records_a_platform_event(pki, superuser):
    host = services.register_host(
        actor=superuser,
        name="node-1",
        endpoint="tcp://127.0.0.1:2376",
        labels={"zone": "eu-1"},
        **tls(pki),
    )
    assert host.uses_tls and host.labels == {"zone": "eu-1"}
    event = Event.objects.get(action="host.register")
    assert event.tenant is None and event.actor == superuser and event.object_repr == "node-1"
    assert pki[1].key.strip() not in event.message


def test_only_platform_admins_change_hosts(owner):
    with pytest.raises(PermissionDenied):
        services.register_host(actor=owner, name="node-1", endpoint="tcp://127.0.0.1:2376")
    host = services.register_host(actor=None, name="node-1", endpoint="tcp://127.0.0.1:2376")
    for call in (
        lambda: services.update_host(actor=owner, host=host, name="x"),
        lambda: services.set_draining(actor=owner, host=host, draining=True),
        lambda: services.remove_host(actor=owner, host=host),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert Host.objects.get(pk=host.pk).name == "node-1"


def test_update_host_validates_the_result_and_names_unknown_fields(pki, superuser):
    host = services.register_host(actor=superuser, name="node-1", endpoint="tcp://127.0.0.1:2376")
    with pytest.raises(ValidationError) as caught:
        services.update_host(actor=superuser, host=host, state="active", name="ok")
    assert caught.value.message_dict == {"state": ["This field cannot be changed here."]}
    with pytest.raises(ValidationError) as caught:
        services.update_host(
            actor=superuser, host=host, tls_client_cert=tls(pki)["tls_client_cert"]
        )
    assert "tls_ca_cert" in caught.value.message_dict

    host = services.update_host(actor=superuser, host=host, name="node-a", labels={"a": "b"})
    assert (host.name, host.labels) == ("node-a", {"a": "b"})
    event = Event.objects.get(action="host.update")
    assert event.data == {"fields": ["name", "labels"]}
    services.update_host(actor=superuser, host=host, name="node-a")  # no change, no Event
    assert Event.objects.filter(action="host.update").count() == 1


def test_remove_host_forgets_its_tls_files(
    pki, settings, tmp_path, django_capture_on_commit_callbacks
):
    from apps.hosts.engine import get_engine

    settings.BERTH_STATE_DIR = tmp_path
    host = services.register_host(
        actor=None, name="node-1", endpoint="tcp://127.0.0.1:2376", **tls(pki)
    )
    get_engine(host).close()
    assert (tmp_path / "tls" / str(host.pk) / "key.pem").exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.remove_host(actor=None, host=host)
    assert not (tmp_path / "tls" / str(host.pk)).exists()
    assert not Host.objects.filter(pk=host.pk).exists()
    assert Event.objects.filter(action="host.remove", object_repr="node-1").exists()


def test_set_draining_is_recorded_once():
    host = services.register_host(actor=None, name="node-1", endpoint="tcp://127.0.0.1:2376")
    services.set_draining(actor=None, host=host, draining=True)
    services.set_draining(actor=None, host=host, draining=True)
    assert Event.objects.filter(action="host.drain").count() == 1
    host.refresh_from_db()
    assert host.draining and host.state == Host.State.PENDING  # becomes draining when seen
