"""Hosts pages: superusers only, every change through apps/hosts/services.py."""

import pytest
from django.urls import reverse

from apps.hosts.models import Host

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

MISSING_SOCKET = "unix:///nonexistent/berth-test/docker.sock"


@pytest.fixture
def missing_host():
    return Host.objects.create(name="engine-1", endpoint=MISSING_SOCKET, labels={"zone": "a"})


def test_hosts_pages_are_404_for_everyone_but_superusers(tenant_a, owner, missing_host, client_for):
    client = client_for(owner)
    for url in [
        reverse("hosts:list"),
        reverse("hosts:create"),
        reverse("hosts:detail", args=[missing_host.pk]),
        reverse("hosts:edit", args=[missing_host.pk]),
        reverse("hosts:delete", args=[missing_host.pk]),
        reverse("hosts:check", args=[missing_host.pk]),
        reverse("hosts:drain", args=[missing_host.pk]),
    ]:
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"draining": "1"}).status_code == 404, url
    missing_host.refresh_from_db()
    assert not missing_host.draining


def test_host_list_shows_state_and_details(superuser, missing_host, client_for):
    Host.objects.filter(pk=missing_host.pk).update(
        state=Host.State.ACTIVE, engine_version="20.10.24", cpus=2, containers_running=3
    )
    body = client_for(superuser).get(reverse("hosts:list")).content.decode()
    assert "engine-1" in body
    assert "state-active" in body
    assert "20.10.24" in body
    assert "zone=a" in body


def test_add_host_with_labels(superuser, client_for):
    response = client_for(superuser).post(
        reverse("hosts:create"),
        {"name": "engine-2", "endpoint": MISSING_SOCKET, "labels": "zone=eu\n# note\nssd = yes"},
    )
    assert response.status_code == 302
    host = Host.objects.get(name="engine-2")
    assert host.labels == {"zone": "eu", "ssd": "yes"}
    # The first heartbeat ran: an engine that does not answer is shown as unreachable.
    assert host.state == Host.State.UNREACHABLE
    assert host.last_error
    detail = client_for(superuser).get(response["Location"]).content.decode()
    assert "Last error" in detail


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "endpoint": "http://nope"}, "endpoint"),
        ({"name": "", "endpoint": MISSING_SOCKET}, "name"),
        ({"name": "x", "endpoint": MISSING_SOCKET, "labels": "no-equals-sign"}, "labels"),
        (
            {"name": "x", "endpoint": "tcp://10.0.0.5:2376", "tls_ca_cert": "junk"},
            "tls_client_cert",
        ),
        ({"name": "engine-1", "endpoint": "unix:///other.sock"}, "name"),
    ],
)
def test_add_host_shows_field_errors(superuser, missing_host, client_for, data, field):
    response = client_for(superuser).post(reverse("hosts:create"), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert Host.objects.count() == 1


def test_edit_host(superuser, missing_host, client_for):
    response = client_for(superuser).post(
        reverse("hosts:edit", args=[missing_host.pk]),
        {"name": "engine-renamed", "endpoint": MISSING_SOCKET, "labels": "zone=b"},
    )
    assert response.status_code == 302
    missing_host.refresh_from_db()
    assert (missing_host.name, missing_host.labels) == ("engine-renamed", {"zone": "b"})


def test_check_now_with_htmx_swaps_the_row(superuser, missing_host, client_for):
    response = client_for(superuser).post(
        reverse("hosts:check", args=[missing_host.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode().strip()
    assert body.startswith(f'<tr id="host-{missing_host.pk}">')
    assert "state-unreachable" in body
    assert "HX-Request" in response["Vary"]


def test_check_now_without_htmx_redirects(superuser, missing_host, client_for):
    response = client_for(superuser).post(reverse("hosts:check", args=[missing_host.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("hosts:detail", args=[missing_host.pk])


def test_drain_and_activate(superuser, missing_host, client_for):
    Host.objects.filter(pk=missing_host.pk).update(state=Host.State.ACTIVE)
    client = client_for(superuser)
    client.post(reverse("hosts:drain", args=[missing_host.pk]), {"draining": "1"})
    missing_host.refresh_from_db()
    assert (missing_host.draining, missing_host.state) == (True, Host.State.DRAINING)
    client.post(reverse("hosts:drain", args=[missing_host.pk]), {"draining": "0"})
    missing_host.refresh_from_db()
    assert (missing_host.draining, missing_host.state) == (False, Host.State.ACTIVE)


def test_remove_host(superuser, missing_host, client_for):
    response = client_for(superuser).post(reverse("hosts:delete", args=[missing_host.pk]))
    assert response.status_code == 302
    assert not Host.objects.exists()


@pytest.mark.engine
def test_check_now_against_the_real_engine(superuser, client_for, settings):
    host = Host.objects.create(name="local", endpoint=settings.BERTH_DOCKER_HOST)
    response = client_for(superuser).post(
        reverse("hosts:check", args=[host.pk]), HTTP_HX_REQUEST="true"
    )
    host.refresh_from_db()
    assert host.state == Host.State.ACTIVE, host.last_error
    assert host.engine_version in response.content.decode()
