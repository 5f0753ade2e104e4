"""The OpenAPI schema generates cleanly and the docs render from local static files."""

import json
import re

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_yaml(client):
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    for resource in ("tenants", "environments", "hosts", "events", "tokens"):
        assert f"/api/v1/{resource}/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_schema_json(client):
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/invitations/accept/" in json.loads(response.content)["paths"]


def test_schema_has_no_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_docs_render_without_a_cdn(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'"(/static/vendor/(?:redoc|swagger-ui)/[^"]+)"', html)
    assert assets
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page loads from another site"
    # Served by WhiteNoise from the collected files (`make run` collects them): here it is
    # enough that every asset the page names is vendored (static/vendor/). What the
    # scripts themselves load is checked in a browser (tests/portal/test_api_docs_requests.py).
    for asset in assets:
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
