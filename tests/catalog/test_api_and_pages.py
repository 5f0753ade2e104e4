"""/api/v1/templates/ and the catalog pages."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.catalog import services
from apps.catalog.models import Template
from apps.deployments.models import Stack
from tests.catalog.conftest import BERTH, COMPOSE
from tests.conftest import login

pytestmark = pytest.mark.django_db
META = {
    "slug": "shop",
    "name": "Shop",
    "category": "web",
    "description": "Our shop.",
    "maintainer": "Acme",
}


@pytest.fixture
def private(member, tenant_a):
    return services.publish_template(member, tenant_a, META, "1.0.0", COMPOSE, BERTH).template


@pytest.fixture
def builtin(db):
    template = Template.objects.create(
        slug="redis",
        name="Redis",
        category="cache",
        description="Key-value store",
        visibility="public",
        approval="approved",
        readme="# Redis\n<script>alert(1)</script>",
    )
    from apps.catalog.services import check_version

    checked = check_version("7.4.1", COMPOSE, BERTH)
    template.versions.create(
        version="7.4.1",
        compose=COMPOSE,
        config=checked.config.to_dict(),
        questions=[q.to_dict() for q in checked.config.questions],
        content_hash=checked.content_hash,
    )
    return template


def test_api_lists_with_filters(member, private, builtin, outsider, tenant_b):
    client = login(Client(), member)
    names = [t["name"] for t in client.get("/api/v1/templates/").json()["results"]]
    assert names == ["Redis", "Shop"]
    assert [
        t["name"] for t in client.get("/api/v1/templates/?category=cache").json()["results"]
    ] == ["Redis"]
    assert [t["name"] for t in client.get("/api/v1/templates/?q=shop").json()["results"]] == [
        "Shop"
    ]
    assert [
        t["name"] for t in client.get("/api/v1/templates/?publisher=berth").json()["results"]
    ] == ["Redis"]
    other = login(Client(), outsider)
    assert [t["name"] for t in other.get("/api/v1/templates/").json()["results"]] == ["Redis"]
    assert other.get(f"/api/v1/templates/{private.pk}/").status_code == 404


def test_api_detail_and_versions(member, private):
    client = login(Client(), member)
    detail = client.get(f"/api/v1/templates/{private.pk}/").json()
    assert detail["versions"][0]["version"] == "1.0.0"
    versions = client.get(f"/api/v1/templates/{private.pk}/versions/").json()
    assert [v["version"] for v in versions] == ["1.0.0"]


def test_api_publish_json_and_errors(member, tenant_a):
    client = login(Client(), member)
    body = {**META, "tenant": "acme", "version": "1.0.0", "compose": COMPOSE, "berth": BERTH}
    response = client.post("/api/v1/templates/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    again = client.post("/api/v1/templates/", body, content_type="application/json")
    assert again.status_code == 400 and "version" in again.json()
    bad = client.post(
        f"/api/v1/templates/{pk}/versions/",
        {"version": "2.0.0", "compose": "services: {web: {image: x, privileged: true}}"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "compose" in bad.json()
    ok = client.post(
        f"/api/v1/templates/{pk}/versions/",
        {"version": "2.0.0", "compose": COMPOSE, "berth": BERTH},
        content_type="application/json",
    )
    assert ok.status_code == 201, ok.content
    unknown = client.post(
        "/api/v1/templates/", {**body, "publisher": "x"}, content_type="application/json"
    )
    assert unknown.status_code == 400 and "publisher" in unknown.json()


def test_api_publish_multipart_upload(member, tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = login(Client(), member)
    data = {
        **META,
        "tenant": "acme",
        "version": "1.0.0",
        "berth": BERTH,
        "compose_file": SimpleUploadedFile("docker-compose.yml", COMPOSE.encode()),
    }
    response = client.post("/api/v1/templates/", data)
    assert response.status_code == 201, response.content


def test_api_outsider_cannot_publish_into_foreign_tenant_or_add_versions(
    outsider, tenant_b, private
):
    client = login(Client(), outsider)
    body = {**META, "tenant": "acme", "version": "1.0.0", "compose": COMPOSE}
    response = client.post("/api/v1/templates/", body, content_type="application/json")
    assert response.status_code == 400 and "tenant" in response.json()
    response = client.post(
        f"/api/v1/templates/{private.pk}/versions/",
        {"version": "9.0.0", "compose": COMPOSE},
        content_type="application/json",
    )
    assert response.status_code == 404


def test_builtin_gets_no_version_from_the_api(member, builtin):
    client = login(Client(), member)
    response = client.post(
        f"/api/v1/templates/{builtin.pk}/versions/",
        {"version": "9.0.0", "compose": COMPOSE},
        content_type="application/json",
    )
    assert response.status_code == 403


# --- pages -------------------------------------------------------------------------------------


def test_catalog_page_search_and_htmx(member, private, builtin):
    client = login(Client(), member)
    page = client.get("/catalog/")
    assert page.status_code == 200 and b"Redis" in page.content and b"Shop" in page.content
    fragment = client.get("/catalog/?q=redis", HTTP_HX_REQUEST="true")
    assert b"Redis" in fragment.content and b"Shop" not in fragment.content
    assert b"<html" not in fragment.content
    mine = client.get("/catalog/?publisher=mine")
    assert b"Shop" in mine.content and b"Key-value" not in mine.content


def test_template_page_escapes_readme_html_and_shows_form(member, builtin):
    client = login(Client(), member)
    page = client.get(f"/catalog/{builtin.pk}/")
    assert page.status_code == 200
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;" in page.content
    assert b'name="GREETING"' in page.content and b'name="PASSWORD"' in page.content


def test_deploy_form_creates_a_stack_and_maps_errors(member, builtin, tenant_a):
    client = login(Client(), member)
    env = tenant_a.environments.get(slug="dev")
    bad = client.post(
        f"/catalog/{builtin.pk}/",
        {"stack_name": "Bad Name", "environment": env.pk, "GREETING": "x\x07"},
    )
    assert bad.status_code == 200
    assert b"Must be a single line of text." in bad.content or b"stack_name" in bad.content
    response = client.post(
        f"/catalog/{builtin.pk}/", {"stack_name": "cache", "environment": env.pk, "GREETING": "yo"}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    stack = Stack.objects.get(name="cache")
    assert stack.answers["GREETING"] == "yo" and len(stack.answers["PASSWORD"]) == 32


def test_deploy_form_answer_error_lands_on_field(member, builtin, tenant_a):
    client = login(Client(), member)
    env = tenant_a.environments.get(slug="dev")
    response = client.post(
        f"/catalog/{builtin.pk}/",
        {"stack_name": "cache", "environment": env.pk, "GREETING": "a\x07"},
    )
    assert response.status_code == 200
    assert b"Must be a single line of text." in response.content
    assert not Stack.objects.exists()


def test_publish_page_and_approvals(member, tenant_a, superuser):
    client = login(Client(), member)
    assert client.get("/catalog/publish/").status_code == 200
    data = {
        **META,
        "version": "1.0.0",
        "compose": COMPOSE,
        "berth": BERTH,
        "visibility": "public",
        "tags": "a, b",
    }
    response = client.post("/catalog/publish/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    template = Template.objects.get(slug="shop")
    assert template.approval == "pending" and template.tags == ["a", "b"]
    assert client.get("/catalog/approvals/").status_code == 404
    admin = login(Client(), superuser)
    assert b"Shop" in admin.get("/catalog/approvals/").content
    admin.post(f"/catalog/{template.pk}/review/", {"decision": "approve"})
    template.refresh_from_db()
    assert template.approval == "approved"


def test_publish_page_shows_service_errors(member, tenant_a):
    client = login(Client(), member)
    data = {
        **META,
        "version": "1.0.0",
        "compose": "services: {web: {image: x, privileged: true}}",
        "visibility": "tenant",
    }
    response = client.post("/catalog/publish/", data)
    assert response.status_code == 200 and b"privileged" in response.content
