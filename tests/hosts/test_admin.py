"""The Django admin: every Berth model is there, and changes go through the services."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.accounts.models import DirectoryAccount
from apps.accounts.services import create_token
from apps.activity.models import Event
from apps.hosts import services
from apps.hosts.models import Host
from apps.tenants.models import Environment, Invitation, Membership, Tenant
from apps.tenants.services import invite
from tests.conftest import login
from tests.hosts.pki import ThrowawayCA

pytestmark = pytest.mark.django_db
BERTH_APPS = {"tenants", "accounts", "activity", "hosts"}


@pytest.fixture
def admin_client(client, superuser):
    return login(client, superuser)


@pytest.fixture
def objects(tenant_a, owner, superuser, make_user):
    """One row of every Berth model."""
    from apps.accounts.ldap import mark_directory_managed

    mark_directory_managed(make_user("dora"), "uid=dora,ou=people,dc=example,dc=test")
    create_token(actor=owner, name="ci", tenant=tenant_a)
    from apps.accounts.services import set_time_zone

    set_time_zone(owner, "Europe/Paris")
    invite(actor=owner, tenant=tenant_a, email="new@example.test")
    services.register_host(actor=None, name="node-1", endpoint="tcp://127.0.0.1:2376")
    swarm = services.register_host(
        actor=None, name="swarm-1", endpoint="tcp://127.0.0.1:2377", kind="swarm"
    )
    from apps.hosts.models import SwarmNode

    SwarmNode.objects.create(
        host=swarm, node_id="n1", hostname="w1", role="worker", availability="active", state="ready"
    )
    from apps.tenants.services import create_tenant, delete_tenant

    delete_tenant(actor=owner, tenant=create_tenant(actor=owner, slug="gone", name="Gone"))
    return tenant_a


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_berth_model_is_registered():
    from django.apps import apps

    models = [m for m in apps.get_models() if m._meta.app_label in BERTH_APPS]
    assert models
    missing = [m.__name__ for m in models if m not in admin.site._registry]
    assert missing == []


def test_every_admin_page_opens(admin_client, objects):
    for model in admin.site._registry:
        if model._meta.app_label not in BERTH_APPS:
            continue
        assert admin_client.get(url(model, "changelist")).status_code == 200, model
        obj = model.objects.first()
        assert obj is not None, model
        assert admin_client.get(url(model, "change", obj.pk)).status_code == 200, model
        add = admin_client.get(url(model, "add"))
        addable = (Tenant, Environment, Host, DirectoryAccount)  # a link is an admin's act
        assert add.status_code == (200 if model in addable else 403), model


def test_non_staff_are_kept_out(client, owner, objects):
    login(client, owner)
    response = client.get(url(Host, "changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_adding_a_host_goes_through_the_service(admin_client, superuser):
    ca = ThrowawayCA()
    pair = ca.client()
    response = admin_client.post(
        url(Host, "add"),
        {
            "name": "secure",
            "endpoint": "tcp://127.0.0.1:2376",
            "tls_ca_cert": ca.cert,
            "tls_client_cert": pair.cert,
            "tls_client_key": pair.key,
            "tls_verify": "on",
            "labels": '{"zone": "eu-1"}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    host = Host.objects.get(name="secure")
    assert host.uses_tls and host.labels == {"zone": "eu-1"}
    assert Event.objects.get(action="host.register").actor == superuser

    page = admin_client.get(url(Host, "change", host.pk)).content.decode()
    assert "PRIVATE KEY" not in page  # the key is write-only

    # Saving without a key keeps the stored one.
    response = admin_client.post(
        url(Host, "change", host.pk),
        {
            "name": "secure-2",
            "endpoint": "tcp://127.0.0.1:2376",
            "tls_ca_cert": ca.cert,
            "tls_client_cert": pair.cert,
            "tls_client_key": "",
            "tls_verify": "on",
            "labels": "{}",
        },
    )
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.name == "secure-2" and host.tls_client_key.strip() == pair.key.strip()


def test_bad_host_input_is_a_form_error(admin_client):
    response = admin_client.post(
        url(Host, "add"),
        {"name": "bad", "endpoint": "http://nope", "labels": "{}", "tls_ca_cert": "x"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Use unix:///path/to/docker.sock or tcp://host:port." in page
    assert not Host.objects.exists()


def test_host_actions(admin_client, tmp_path):
    host = services.register_host(
        actor=None, name="down", endpoint=f"unix://{tmp_path}/docker.sock"
    )
    for action in ("heartbeat", "drain"):
        response = admin_client.post(
            url(Host, "changelist"), {"action": action, "_selected_action": [host.pk]}
        )
        assert response.status_code == 302
    host.refresh_from_db()
    assert host.state == Host.State.UNREACHABLE and host.draining
    admin_client.post(url(Host, "delete", host.pk), {"post": "yes"})
    assert Event.objects.filter(action="host.remove").exists()


def test_adding_a_tenant_gives_it_an_owner_and_environments(admin_client, superuser):
    response = admin_client.post(url(Tenant, "add"), {"slug": "initech", "name": "Initech"})
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    assert Membership.objects.get(tenant=tenant).user == superuser
    assert tenant.environments.count() == 3
    assert Event.objects.filter(action="tenant.create", tenant=tenant).exists()


def test_token_and_invitation_revoke_actions(admin_client, objects):
    from apps.accounts.models import ApiToken

    token = ApiToken.objects.get()
    page = admin_client.get(url(ApiToken, "change", token.pk)).content.decode()
    assert token.key_hash not in page
    admin_client.post(
        url(ApiToken, "changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )
    token.refresh_from_db()
    assert token.revoked_at is not None

    invitation = Invitation.objects.get()
    admin_client.post(
        url(Invitation, "changelist"), {"action": "revoke", "_selected_action": [invitation.pk]}
    )
    invitation.refresh_from_db()
    assert invitation.status == "revoked"


def test_removing_the_last_owner_is_refused_with_a_message(admin_client, objects, owner):
    membership = Membership.objects.get(tenant=objects, user=owner)
    response = admin_client.post(
        url(Membership, "changelist"),
        {"action": "remove_members", "_selected_action": [membership.pk]},
        follow=True,
    )
    assert "needs at least one owner" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_events_cannot_be_changed(admin_client, objects):
    event = Event.objects.first()
    assert admin_client.post(url(Event, "delete", event.pk), {"post": "yes"}).status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()
