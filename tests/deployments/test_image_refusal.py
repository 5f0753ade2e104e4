"""An image id in a compose file is a 400 naming the service's `image` field, on the API
and on the page alike: the engine would run whichever cached image has that id."""

from __future__ import annotations

import pytest

from apps.deployments.models import Stack
from tests.deployments.test_api import client_for

pytestmark = pytest.mark.django_db

ID = "55794016a33cee476aeef8ee81463e1d90fec787d1ccad8f3726d76c42960daf"


@pytest.mark.parametrize("image", [f"sha256:{ID}", ID, ID[:12], "557", f"sha256:{ID[:8]}"])
def test_api_refuses_an_image_id(member, env_a, image):
    compose = f'services:\n  web:\n    image: "{image}"\n'
    body = {"name": "shop", "environment": env_a.pk, "compose": compose}
    response = client_for(member).post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400, response.content
    messages = response.json()["compose"]
    assert any("'web': image:" in m and "image id" in m for m in messages), messages
    assert not Stack.objects.exists()


def test_api_accepts_a_repository_that_looks_hex(member, env_a):
    compose = 'services:\n  web:\n    image: "cafe:1"\n'
    body = {"name": "shop", "environment": env_a.pk, "compose": compose}
    response = client_for(member).post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 201, response.content
