"""Resources on the real engine: volume sizes, orphaned volumes, the inspect view with
secrets masked, and what another tenant or another installation can see (nothing).

Stacks are deployed by the reconciler in the test process (no worker); pages and the API
are read with the test client, so every figure comes from the engine through the driver.
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache

from apps.activity.models import Event
from apps.core.roles import Role
from apps.deployments import containers as naming
from apps.deployments import reconciler
from apps.deployments.models import Container, Stack
from apps.hosts.models import Host
from apps.tenants.middleware import SESSION_TENANT
from apps.tenants.models import Membership
from tests.fixtures.engine import docker, engine_containers, make_stack

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

WEB = """
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo hi > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    ports: ["127.0.0.1::80"]
    environment:
      DB_PASSWORD: ${DB_PASSWORD}
      DSN: "postgres://app:${DB_PASSWORD}@db/app"
      GREETING: hello
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
    volumes: ["data:/data"]
volumes:
  data: {}
"""
SECRET = "hunter2-" + uuid.uuid4().hex[:6]


@pytest.fixture(autouse=True)
def _fresh_sizes():
    cache.clear()  # volume sizes are cached per host for 30 s
    yield
    cache.clear()


def signed_in(client, user, tenant):
    client.force_login(user)
    session = client.session
    session[SESSION_TENANT] = tenant.pk
    session.save()
    return client


def deploy(environment, image, name="app") -> Stack:
    stack = make_stack(environment, name, WEB, {"IMAGE": image, "DB_PASSWORD": SECRET})
    Stack.objects.filter(pk=stack.pk).update(answers={"DB_PASSWORD": SECRET})
    reconciler.reconcile_stack(stack.pk)
    stack = Stack.objects.get(pk=stack.pk)
    assert stack.state == Stack.State.HEALTHY, stack.state_reason
    return stack


def volume_of(stack: Stack) -> str:
    return naming.volume_name(stack, "data")


def api_volumes(client, **params) -> dict:
    response = client.get("/api/v1/volumes/", params)
    assert response.status_code == 200, response.content
    return {v["name"]: v for v in response.json()["results"]}


def test_volume_size_shows_what_was_written(client, owner, environment, image):
    stack = deploy(environment, image)
    (web,) = engine_containers(stack)
    docker("exec", web["Id"], "dd", "if=/dev/zero", "of=/data/blob", "bs=1024", "count=2048")
    signed_in(client, owner, environment.tenant)

    page = client.get("/resources/volumes/").content.decode()
    assert f'data-volume="{volume_of(stack)}"' in page
    listed = api_volumes(client)[volume_of(stack)]
    assert listed["size"] >= 2 * 1024 * 1024
    assert listed["stack"] == stack.pk and listed["key"] == "data"
    assert listed["orphaned"] is False and listed["in_use_by"] == 1
    assert "2.0\xa0MB" in page or "2.0 MB" in page

    card = client.get(f"/stacks/{stack.pk}/volumes/").content.decode()
    assert volume_of(stack) in card and "MB" in card
    # The stack page carries the card (its body loads with htmx) and links the port.
    detail = client.get(f"/stacks/{stack.pk}/").content.decode()
    assert f"/stacks/{stack.pk}/volumes/" in detail
    port = web["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    assert f'href="http://127.0.0.1:{port}"' in detail


def test_an_orphaned_volume_is_listed_and_a_tenant_admin_may_remove_it(
    client, owner, member, environment, image
):
    stack = deploy(environment, image)
    name = volume_of(stack)
    Stack.objects.filter(pk=stack.pk).update(desired_state="removed", remove_volumes=False)
    reconciler.reconcile_stack(stack.pk)
    assert not Stack.objects.filter(pk=stack.pk).exists()
    assert docker("volume", "inspect", "-f", "{{.Name}}", name) == name

    signed_in(client, owner, environment.tenant)
    page = client.get("/resources/volumes/").content.decode()
    assert f'data-volume="{name}" data-orphaned' in page
    assert "orphaned" in page and "Remove…" in page
    listed = api_volumes(client, tenant=environment.tenant.slug)[name]
    assert listed["orphaned"] is True and listed["stack"] == stack.pk

    # A member may look, not remove.
    Membership.objects.create(tenant=environment.tenant, user=member, role=Role.MEMBER)
    as_member = signed_in(type(client)(), member, environment.tenant)
    host = Host.objects.get(name="local")
    body = {"host": host.pk, "name": name, "confirm": name}
    assert as_member.post("/resources/volumes/remove/", body).status_code == 403
    assert as_member.get("/resources/volumes/remove/", body).status_code == 403
    confirm = client.get("/resources/volumes/remove/", {"host": host.pk, "name": name})
    assert confirm.status_code == 200 and name in confirm.content.decode()
    # The admin must type the name.
    refused = client.post("/resources/volumes/remove/", {**body, "confirm": "nope"})
    assert refused.status_code == 200 and "exactly" in refused.content.decode()
    # Someone mounts the orphan by hand: in use, so it stays.
    label = f"io.berth.tenant={environment.tenant.slug}"  # the fixture's cleanup
    squatter = docker("run", "-d", "--label", label, "-v", f"{name}:/x", image, "sleep", "60")
    refused = client.post("/resources/volumes/remove/", body)
    assert "is in use by" in refused.content.decode()
    assert docker("volume", "inspect", "-f", "{{.Name}}", name) == name
    docker("rm", "-f", squatter)
    done = client.post("/resources/volumes/remove/", body)
    assert done.status_code == 302
    assert docker("volume", "ls", "-q", "--filter", f"name=^{name}$") == ""
    event = Event.objects.get(action="volume.remove")
    assert event.tenant == environment.tenant and event.actor == owner
    assert name in event.message


def test_a_volume_in_use_is_never_removed(client, owner, environment, image):
    stack = deploy(environment, image)
    signed_in(client, owner, environment.tenant)
    host = Host.objects.get(name="local")
    name = volume_of(stack)
    response = client.post(
        "/resources/volumes/remove/", {"host": host.pk, "name": name, "confirm": name}
    )
    assert response.status_code == 200
    assert "belongs to stack app" in response.content.decode()
    assert docker("volume", "inspect", "-f", "{{.Name}}", name) == name
    assert not Event.objects.filter(action="volume.remove").exists()


def test_inspect_masks_secrets_for_a_viewer(client, owner, viewer, environment, image):
    stack = deploy(environment, image)
    container = Container.objects.get(stack=stack)
    Membership.objects.create(tenant=environment.tenant, user=viewer, role=Role.VIEWER)
    signed_in(client, viewer, environment.tenant)

    page = client.get(f"/stacks/containers/{container.pk}/inspect/")
    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    assert 'data-env-name="DB_PASSWORD" data-masked' in html
    assert 'data-env-name="DSN" data-masked' in html  # the secret inside another value
    assert "hello" in html and image in html
    assert "httpd -f -p 80" in html
    assert "data-restart-count>0<" in html
    assert naming.volume_name(stack, "data") in html

    found = client.get(f"/api/v1/containers/{container.pk}/inspect/")
    assert found.status_code == 200
    data = found.json()
    assert SECRET not in found.content.decode()
    env = {e["name"]: e for e in data["env"]}
    assert env["DB_PASSWORD"]["masked"] and env["GREETING"]["value"] == "hello"
    # A DSN is secret by its name, everywhere (the card, the API, inspect): all masked.
    assert env["DSN"]["masked"] and env["DSN"]["value"] == "••••••"
    assert data["state"]["running"] and data["state"]["restart_count"] == 0
    assert data["health"]["status"] in ("starting", "healthy")
    assert any(e["action"] == "container.create" for e in data["events"])
    # From the containers table.
    detail = client.get(f"/stacks/{stack.pk}/").content.decode()
    assert f"/stacks/containers/{container.pk}/inspect/" in detail


def test_another_tenant_sees_none_of_it(client, outsider, tenant_b, environment, image):
    stack = deploy(environment, image)
    container = Container.objects.get(stack=stack)
    signed_in(client, outsider, tenant_b)

    assert client.get(f"/stacks/containers/{container.pk}/inspect/").status_code == 404
    assert client.get(f"/api/v1/containers/{container.pk}/inspect/").status_code == 404
    assert client.get(f"/stacks/{stack.pk}/volumes/").status_code == 404
    assert volume_of(stack) not in client.get("/resources/volumes/").content.decode()
    assert volume_of(stack) not in api_volumes(client)
    slug = environment.tenant.slug
    assert client.get("/api/v1/volumes/", {"tenant": slug}).status_code == 404
    networks = client.get("/api/v1/networks/").json()["results"]
    assert not [n for n in networks if f"-s{stack.pk}" in n["name"]]
    images = client.get("/api/v1/images/").json()["results"]
    assert image not in {t for i in images for t in i["tags"]}
    host = Host.objects.get(name="local")
    name = volume_of(stack)
    response = client.post(
        "/resources/volumes/remove/", {"host": host.pk, "name": name, "confirm": name}
    )
    assert response.status_code in (200, 403)
    assert docker("volume", "inspect", "-f", "{{.Name}}", name) == name


def test_another_installations_volume_is_not_shown(client, owner, environment, image):
    stack = deploy(environment, image)
    tenant = environment.tenant
    other = "o" + uuid.uuid4().hex[:8]
    labels = {
        "io.berth.managed": "true",
        "io.berth.installation": other,
        "io.berth.tenant": tenant.slug,  # the fixture's cleanup finds it by this
        "io.berth.tenant-id": str(tenant.pk),
        "io.berth.environment-id": str(environment.pk),
        "io.berth.stack": str(stack.pk),
    }
    args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    twin = docker("volume", "create", *args, f"berth-{other}-s{stack.pk}-data")
    signed_in(client, owner, tenant)

    assert twin not in client.get("/resources/volumes/").content.decode()
    assert twin not in client.get(f"/stacks/{stack.pk}/volumes/").content.decode()
    listed = api_volumes(client)
    assert volume_of(stack) in listed and twin not in listed
    assert other != settings.BERTH_INSTALLATION_ID


def test_tenant_networks_and_images(client, owner, environment, image):
    stack = deploy(environment, image)
    signed_in(client, owner, environment.tenant)
    networks = {n["name"]: n for n in client.get("/api/v1/networks/").json()["results"]}
    assert networks[naming.stack_network_name(stack)]["stack"] == stack.pk
    assert networks[naming.network_name(stack)]["scope"] == "environment"
    images = client.get("/api/v1/images/").json()["results"]
    (used,) = [i for i in images if image in i["tags"]]
    assert used["stacks"] == [stack.pk] and used["containers"] == 1
    page = client.get("/resources/images/").content.decode()
    assert image in page and stack.name in page
    assert "Networks" in client.get("/resources/networks/").content.decode()


def test_an_unreachable_host_is_said_so_not_a_500(client, owner, environment, image):
    Host.objects.create(
        name="gone", endpoint="unix:///nonexistent/docker.sock", state=Host.State.UNREACHABLE
    )
    signed_in(client, owner, environment.tenant)
    for path in ("/resources/volumes/", "/resources/networks/", "/resources/images/"):
        response = client.get(path)
        assert response.status_code == 200
        assert 'data-unreachable="gone"' in response.content.decode()
        assert "nonexistent" not in response.content.decode()  # the endpoint is the operator's
    listed = client.get("/api/v1/volumes/").json()
    assert listed["unreachable"] == [{"host": "gone", "error": "unreachable"}]


def test_the_operator_sees_every_image_of_a_host_with_its_stacks(
    client, superuser, owner, environment, image
):
    stack = deploy(environment, image)
    host = Host.objects.get(name="local")
    client.force_login(superuser)
    fragment = client.get(f"/resources/hosts/{host.pk}/images/").content.decode()
    assert image in fragment and f"{environment.tenant.slug}</code>/{stack.name}" in fragment
    assert (
        f"/resources/hosts/{host.pk}/images/" in client.get(f"/hosts/{host.pk}/").content.decode()
    )
    client.force_login(owner)
    assert client.get(f"/resources/hosts/{host.pk}/images/").status_code == 404


def test_the_operator_reads_why_a_host_is_unreachable(client, superuser, environment):
    Host.objects.create(
        name="gone", endpoint="unix:///nonexistent/docker.sock", state=Host.State.UNREACHABLE
    )
    signed_in(client, superuser, environment.tenant)
    assert "nonexistent" in client.get("/resources/volumes/").content.decode()
    (gone,) = client.get("/api/v1/volumes/").json()["unreachable"]
    assert "no socket file" in gone["error"]


def test_inspect_of_a_container_on_a_host_that_does_not_answer(client, owner, environment, image):
    stack = deploy(environment, image)
    gone = Host.objects.create(
        name="gone", endpoint="unix:///nonexistent/docker.sock", state=Host.State.UNREACHABLE
    )
    container = Container.objects.get(stack=stack)
    Container.objects.filter(pk=container.pk).update(host=gone)
    signed_in(client, owner, environment.tenant)
    page = client.get(f"/stacks/containers/{container.pk}/inspect/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "data-inspect-error" in html and "does not answer" in html
    assert "nonexistent" not in html
    assert client.get(f"/api/v1/containers/{container.pk}/inspect/").status_code == 503
    card = client.get(f"/stacks/{stack.pk}/volumes/")
    assert card.status_code == 200 and 'data-unreachable="gone"' in card.content.decode()
