"""The frontier with real HAProxy and real containers: routing, reloads, refusals."""

from __future__ import annotations

import pytest

from apps.traffic import frontier as frontier_config

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def test_route_to_a_healthy_container_answers(frontier, routed_web):
    web = routed_web("shop.localhost")
    web.add_container("1.0")

    result = frontier_config.apply("test")

    assert result.ok and result.reloaded, result.error
    status, body = frontier.get("shop.localhost")
    assert status == 200
    assert "web 1.0" in body
    assert frontier.get("nobody.localhost")[0] == 404
