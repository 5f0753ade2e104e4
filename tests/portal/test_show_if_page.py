"""show_if on the pages a person fills in (the catalog's deploy form and a stack's Edit
page, one script in static/js/berth.js): a question appears only while the answer it
depends on has one of the listed values."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import RUN_ID
from tests.fixtures.catalog import public_template

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPOSE = """services:
  web:
    image: berth-demo/web:1.0
    environment:
      ROUTE: ${ROUTE}
      HOST: ${HOST}
"""
BERTH = """questions:
  - {variable: ROUTE, label: Route it, type: bool, default: false}
  - {variable: HOST, label: Route host name, type: hostname, required: true, show_if: {ROUTE: true}}
"""


def routed_template():
    return public_template(
        f"routed{RUN_ID}",
        "Routed",
        "A question shown only when another is ticked.",
        COMPOSE,
        BERTH,
    )


def test_a_question_shows_when_its_condition_holds(visitor_factory, verified_user):
    from apps.tenants import services as tenant_services

    user = verified_user(f"shy{RUN_ID}")
    tenant_services.create_tenant(actor=user, slug=f"shy{RUN_ID}", name="Show if")
    template = routed_template()
    visitor = visitor_factory()
    visitor.log_in(user.username)
    page = visitor.visit(f"/catalog/{template.pk}/")
    host = page.get_by_label("Route host name")
    expect(host).to_be_hidden()
    page.get_by_label("Route it").check()
    expect(host).to_be_visible()
    visitor.snap("shown")
    page.get_by_label("Route it").uncheck()
    expect(host).to_be_hidden()
