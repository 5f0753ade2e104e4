"""The API docs pages (ReDoc and Swagger UI) ask nothing of any server but the portal.

Every request the page makes, scripts, styles, fonts, images and the schema, is recorded
in a real browser; a logo or a font from a CDN would leak who reads the docs, and breaks
the page where the portal has no internet access.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import RUN_ID

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    ("path", "ready"),
    [("/api/v1/redoc/", "h1:has-text('Berth API')"), ("/api/v1/docs/", ".swagger-ui .info")],
)
def test_api_docs_load_only_from_the_portal(visitor, verified_user, live_server, path, ready):
    verified_user(f"doc{RUN_ID}")
    visitor.log_in(f"doc{RUN_ID}")
    requested: list[str] = []
    visitor.page.on("request", lambda request: requested.append(request.url))
    page = visitor.visit(path)
    # ReDoc lays out the whole schema in the browser before its title shows: tens of
    # seconds on a loaded 2-CPU machine (20 s was not always enough).
    expect(page.locator(ready).first).to_be_visible(timeout=90_000)
    page.wait_for_load_state("networkidle")
    visitor.snap()
    origin = urlparse(live_server.url)
    outside = [
        url
        for url in requested
        if not url.startswith("data:")
        and not url.startswith("blob:")
        and (urlparse(url).scheme, urlparse(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert requested, "the page made no request at all"
    assert not outside, outside
    assert not visitor.broken, visitor.broken
