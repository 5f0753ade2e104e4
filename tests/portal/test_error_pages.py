"""Error pages: friendly, in the layout, and the 500 page needs no request context."""

import pytest
from django.test import RequestFactory

from apps.portal import views

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_404_page_uses_the_layout(owner, client_for):
    response = client_for(owner).get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert 'class="sidebar"' in body


def test_404_page_for_anonymous_visitors(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Sign in" in response.content.decode()


def test_500_page_renders_without_context_processors():
    request = RequestFactory().get("/")  # no user, no session, no tenant: nothing to lean on
    response = views.server_error(request)
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_403_page_explains_the_refusal(tenant_a, member, client_for):
    response = client_for(member).get("/tenants/acme/edit/")
    assert response.status_code == 403
    assert "admin role" in response.content.decode()
