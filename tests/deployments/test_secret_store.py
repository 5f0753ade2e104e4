"""The environment's store of secrets and configs: the service functions (roles,
validation, encryption at rest, rotation, deletion in use), the compose references
checked at create and edit, /api/v1/secrets/ and the Secrets page. No engine here:
delivery is tested in test_secrets_engine.py and tests/swarm/test_swarm_secrets.py."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.activity.models import Event
from apps.deployments import secret_store, services
from apps.deployments.models import Secret
from apps.deployments.spec import service_hash
from tests.conftest import login
from tests.fixtures.api import results

pytestmark = pytest.mark.django_db

VALUE = "s3cr3t-hunter2-value"
USES_DB = """
services:
  web:
    image: berth-demo/web:1.0
    secrets: [{source: db, target: password, uid: "100", mode: 0440}]
    configs: [site]
secrets: {db: {external: true, name: db_password}}
configs: {site: {external: true}}
"""


@pytest.fixture
def db_secret(member, env_a):
    return secret_store.create_entry(member, env_a, kind="secret", name="db_password", value=VALUE)


@pytest.fixture
def site_config(member, env_a):
    return secret_store.create_entry(member, env_a, kind="config", name="site", value="a=1\n")


def everything_recorded() -> str:
    return json.dumps(list(Event.objects.values("message", "data")))


# --- service functions ---------------------------------------------------------------------


def test_member_creates_a_secret_encrypted_at_rest(member, env_a, db_secret):
    row = Secret.objects.get(pk=db_secret.pk)
    assert (row.kind, row.name, row.version, row.size) == ("secret", "db_password", 1, len(VALUE))
    assert VALUE not in row.value_encrypted and VALUE not in repr(row)
    assert secret_store.value_of(row) == VALUE.encode()
    assert len(row.digest) == 16 and row.digest == secret_store.digest_of(VALUE.encode())
    event = Event.objects.get(action="secret.create")
    assert event.data["name"] == "db_password" and event.actor == member
    assert VALUE not in everything_recorded()


def test_viewer_cannot_change_the_store(viewer, env_a, db_secret):
    with pytest.raises(PermissionDenied):
        secret_store.create_entry(viewer, env_a, kind="secret", name="x", value="y")
    with pytest.raises(PermissionDenied):
        secret_store.rotate_entry(viewer, db_secret, value="z")
    with pytest.raises(PermissionDenied):
        secret_store.delete_entry(viewer, db_secret)


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"name": "bad name"}, "name", "letters, digits"),
        ({"name": "-x"}, "name", "starting with a letter or digit"),
        ({"name": "x" * 65}, "name", "1 to 64"),
        ({"kind": "password"}, "kind", "Choose secret or config"),
        ({"value": ""}, "value", "Enter a value"),
        ({"value": "x" * (500 * 1024 + 1)}, "value", "At most 500 KiB"),
    ],
)
def test_bad_input_names_its_field(member, env_a, fields, field, needle):
    data = {"kind": "secret", "name": "ok", "value": "v", **fields}
    with pytest.raises(ValidationError) as info:
        secret_store.create_entry(member, env_a, **data)
    assert needle in " ".join(info.value.message_dict[field])
    assert not Secret.objects.exists()


def test_a_name_is_unique_per_kind_in_an_environment(member, env_a, db_secret):
    with pytest.raises(ValidationError) as info:
        secret_store.create_entry(member, env_a, kind="secret", name="db_password", value="x")
    assert "already exists" in info.value.message_dict["name"][0]
    secret_store.create_entry(member, env_a, kind="config", name="db_password", value="x")


def test_rotation_bumps_version_and_digest_and_redeploys_users(
    member, env_a, db_secret, site_config, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        stack = services.create_stack(member, env_a, "shop", compose=USES_DB)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        rotated = secret_store.rotate_entry(member, db_secret, value="new-value")
    assert (rotated.version, rotated.size) == (2, 9)
    assert rotated.digest != db_secret.digest
    assert secret_store.value_of(Secret.objects.get(pk=db_secret.pk)) == b"new-value"
    assert len(queued) == 1  # the reconcile of the one stack that uses it
    event = Event.objects.get(action="secret.rotate")
    assert "redeploying shop" in event.message and event.data["version"] == 2
    assert [s.pk for s in secret_store.stacks_using(rotated)] == [stack.pk]
    assert "new-value" not in everything_recorded()


def test_an_entry_in_use_cannot_be_deleted(member, env_a, db_secret, site_config):
    services.create_stack(member, env_a, "shop", compose=USES_DB)
    with pytest.raises(ValidationError, match="used by shop"):
        secret_store.delete_entry(member, db_secret)
    other = secret_store.create_entry(member, env_a, kind="secret", name="spare", value="x")
    secret_store.delete_entry(member, other)
    assert not Secret.objects.filter(pk=other.pk).exists()
    assert Event.objects.filter(action="secret.delete").count() == 1


def test_config_values_are_shown_to_members_only(member, viewer, db_secret, site_config):
    assert secret_store.config_value(member, site_config) == "a=1\n"
    assert secret_store.config_value(viewer, site_config) is None
    assert secret_store.config_value(member, db_secret) is None


# --- stacks and the store --------------------------------------------------------------------


def test_a_stack_naming_a_missing_entry_is_refused_at_create(member, env_a, db_secret):
    with pytest.raises(ValidationError) as info:
        services.create_stack(member, env_a, "shop", compose=USES_DB)
    [message] = info.value.message_dict["compose"]
    assert message.startswith("configs.site: there is no config named 'site' in the environment")


def test_the_revision_names_entries_and_holds_no_value(member, env_a, db_secret, site_config):
    stack = services.create_stack(member, env_a, "shop", compose=USES_DB)
    spec = stack.current_revision.spec
    assert spec["project"]["secrets"] == {"db": {"key": "db", "name": "db_password"}}
    web = spec["project"]["services"]["web"]
    assert web["secrets"] == [
        {"source": "db", "target": "/run/secrets/password", "uid": "100", "gid": None,
         "mode": 0o440},
    ]  # fmt: skip
    assert VALUE not in json.dumps(spec) and "a=1" not in json.dumps(spec)


def test_spec_hash_follows_store_versions_and_ignores_empty_lists(
    member, env_a, db_secret, site_config
):
    spec = services.create_stack(member, env_a, "shop", compose=USES_DB).current_revision.spec
    v1 = {**spec, "store_versions": {"secret:db": f"{db_secret.pk}.1", "config:site": "9.1"}}
    v2 = {**spec, "store_versions": {"secret:db": f"{db_secret.pk}.2", "config:site": "9.1"}}
    assert service_hash(v1, "web") != service_hash(v2, "web")
    plain = {"project": {"services": {"web": {"image": "x"}}}, "hardening": {}}
    empty = {"project": {"services": {"web": {"image": "x", "secrets": [], "configs": []}}},
             "hardening": {}}  # fmt: skip
    assert service_hash(plain, "web") == service_hash(empty, "web")


def test_api_stack_naming_a_missing_entry_is_a_400_on_compose(api_as, member, env_a, db_secret):
    api, _ = api_as(member)
    body = {"name": "shop", "environment": env_a.pk, "compose": USES_DB}
    response = api.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["compose"]
    assert message.startswith("configs.site: there is no config named 'site'")


def test_a_compose_file_with_a_file_secret_is_a_400_naming_it(api_as, member, env_a):
    api, _ = api_as(member)
    compose = "services: {web: {image: x, secrets: [db]}}\nsecrets: {db: {file: ./db.txt}}\n"
    body = {"name": "shop", "environment": env_a.pk, "compose": compose}
    response = api.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400
    assert response.json()["compose"][0].startswith("secret 'db': file: key 'file' is refused")


# --- the API -------------------------------------------------------------------------------


def test_api_creates_and_never_returns_a_secret_value(api_as, member, env_a):
    api, _ = api_as(member)
    body = {"environment": env_a.pk, "kind": "secret", "name": "db_password", "value": VALUE}
    created = api.post("/api/v1/secrets/", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["name"] == "db_password" and data["version"] == 1
    assert data["config_value"] is None and "value" not in data
    listed = api.get("/api/v1/secrets/")
    detail = api.get(f"/api/v1/secrets/{data['id']}/")
    for response in (created, listed, detail):
        assert VALUE not in response.content.decode()
    assert [r["name"] for r in results(listed)] == ["db_password"]


def test_api_rotates_with_patch_and_refuses_renames(api_as, member, db_secret):
    api, _ = api_as(member)
    url = f"/api/v1/secrets/{db_secret.pk}/"
    rotated = api.patch(url, {"value": "other"}, format="json")
    assert rotated.status_code == 200 and rotated.json()["version"] == 2
    assert "other" not in rotated.content.decode()
    renamed = api.patch(url, {"name": "x"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()
    empty = api.patch(url, {}, format="json")
    assert empty.status_code == 400 and "value" in empty.json()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "no spaces"}, "name"),
        ({"value": "x" * (500 * 1024 + 1)}, "value"),
        ({"kind": "vault"}, "kind"),
        ({"environment": 999999}, "environment"),
        ({"tenant": "acme"}, "tenant"),
    ],
)
def test_api_400_names_the_field(api_as, member, env_a, fields, field):
    api, _ = api_as(member)
    body = {"environment": env_a.pk, "kind": "secret", "name": "ok", "value": "v", **fields}
    response = api.post("/api/v1/secrets/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Secret.objects.exists()


def test_api_viewer_reads_names_and_cannot_write(api_as, viewer, member, db_secret, site_config):
    api, _ = api_as(viewer)
    data = results(api.get("/api/v1/secrets/?kind=config"))
    assert [(d["name"], d["config_value"]) for d in data] == [("site", None)]
    assert (
        api.patch(f"/api/v1/secrets/{db_secret.pk}/", {"value": "x"}, format="json").status_code
        == 403
    )
    assert api.delete(f"/api/v1/secrets/{db_secret.pk}/").status_code == 403
    member_api, _ = api_as(member)
    shown = member_api.get(f"/api/v1/secrets/{site_config.pk}/").json()
    assert shown["config_value"] == "a=1\n"


def test_api_delete_in_use_is_a_400(api_as, member, env_a, db_secret, site_config):
    services.create_stack(member, env_a, "shop", compose=USES_DB)
    api, _ = api_as(member)
    response = api.delete(f"/api/v1/secrets/{db_secret.pk}/")
    assert response.status_code == 400 and "used by shop" in response.content.decode()


def test_api_another_tenants_entries_are_404(api_as, outsider, env_b, db_secret):
    api, _ = api_as(outsider)
    assert results(api.get("/api/v1/secrets/")) == []
    url = f"/api/v1/secrets/{db_secret.pk}/"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"value": "x"}, format="json").status_code == 404
    body = {"environment": db_secret.environment_id, "kind": "secret", "name": "x", "value": "v"}
    response = api.post("/api/v1/secrets/", body, format="json")
    assert response.status_code == 400 and "environment" in response.json()


# --- the page ------------------------------------------------------------------------------


def test_page_lists_adds_and_shows_errors(client, member, env_a, db_secret, site_config):
    login(client, member)
    url = f"/environments/{env_a.pk}/secrets/"
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "db_password" in text and db_secret.digest in text and VALUE not in text
    assert "a=1" in text  # a config's value, for a member
    refused = client.post(url, {"kind": "secret", "name": "bad name", "value": "x"})
    assert refused.status_code == 200 and "letters, digits" in refused.content.decode()
    added = client.post(url, {"kind": "secret", "name": "api_key", "value": "k"})
    assert added.status_code == 302
    assert Secret.objects.filter(environment=env_a, name="api_key").exists()


def test_page_rotates_and_deletes(client, member, env_a, db_secret):
    login(client, member)
    rotate = f"/environments/secrets/{db_secret.pk}/rotate/"
    assert client.get(rotate).status_code == 200
    assert VALUE not in client.get(rotate).content.decode()
    assert client.post(rotate, {"value": "rotated"}).status_code == 302
    assert Secret.objects.get(pk=db_secret.pk).version == 2
    client.post(f"/environments/secrets/{db_secret.pk}/delete/")
    assert not Secret.objects.filter(pk=db_secret.pk).exists()


def test_viewer_page_shows_names_only(client, viewer, env_a, db_secret, site_config):
    login(client, viewer)
    text = client.get(f"/environments/{env_a.pk}/secrets/").content.decode()
    assert "db_password" in text and "site" in text and "a=1" not in text
    assert "Add a secret" not in text
    assert client.get(f"/environments/secrets/{db_secret.pk}/rotate/").status_code == 403


def test_api_a_body_over_the_request_limit_is_a_400_not_a_500(api_as, member, env_a):
    api, _ = api_as(member)
    body = {"environment": env_a.pk, "kind": "secret", "name": "big", "value": "x" * 3_000_000}
    response = api.post("/api/v1/secrets/", body, format="json")
    assert 400 <= response.status_code < 500, response.status_code
    assert not Secret.objects.exists()


def test_htmx_add_with_an_error_answers_the_card_with_the_message(client, member, env_a):
    login(client, member)
    url = f"/environments/{env_a.pk}/secrets/"
    response = client.post(url, {"kind": "secret", "name": "", "value": ""}, HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert response.status_code == 200 and 'id="secrets-card"' in text
    assert "This field is required" in text
