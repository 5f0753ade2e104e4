"""OAuth providers switched on by environment variables, checked without leaving the box.

The login page must list a configured provider, and its login URL must send the browser
to the provider's authorize URL with our client id. OpenID Connect reads the issuer's
discovery document, which a small HTTP server on loopback serves here.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import override_settings
from django.urls import reverse

from apps.accounts.oauth_settings import socialaccount_providers_from_env

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

CALLBACK = "http://testserver/accounts/{}/login/callback/"


def providers(**env: str) -> override_settings:
    return override_settings(SOCIALACCOUNT_PROVIDERS=socialaccount_providers_from_env(env))


def authorize_redirect(client, login_url: str) -> tuple[str, dict[str, list[str]]]:
    response = client.post(login_url)
    assert response.status_code == 302, response.content[:500]
    location = urlsplit(response["Location"])
    return f"{location.scheme}://{location.netloc}{location.path}", parse_qs(location.query)


@pytest.fixture
def oidc_issuer():
    """An OpenID Connect issuer on 127.0.0.1 that serves only its discovery document."""

    class Discovery(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path != "/.well-known/openid-configuration":
                self.send_error(404)
                return
            base = f"http://127.0.0.1:{self.server.server_port}"
            body = json.dumps(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "userinfo_endpoint": f"{base}/userinfo",
                    "jwks_uri": f"{base}/jwks",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Discovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_no_provider_is_listed_or_reachable_without_its_variables(client):
    with providers():
        page = client.get(reverse("account_login")).content.decode()
        assert "/accounts/github/login/" not in page
        assert "/accounts/gitlab/login/" not in page
        assert client.post("/accounts/github/login/").status_code == 404
        assert client.get("/accounts/gitlab/login/callback/?code=x").status_code == 404
        assert client.post("/accounts/oidc/oidc/login/").status_code == 404


def test_github_redirects_to_its_authorize_url_with_our_client_id(client):
    with providers(BERTH_GITHUB_CLIENT_ID="gh-client-123", BERTH_GITHUB_SECRET="gh-secret"):
        assert "/accounts/github/login/" in client.get(reverse("account_login")).content.decode()
        url, query = authorize_redirect(client, "/accounts/github/login/")

    assert url == "https://github.com/login/oauth/authorize"
    assert query["client_id"] == ["gh-client-123"]
    assert query["redirect_uri"] == [CALLBACK.format("github")]
    assert set(query["scope"][0].split()) == {"read:user", "user:email"}
    assert query["state"][0]
    assert "gh-secret" not in str(query)


def test_gitlab_uses_the_self_hosted_url(client):
    with providers(
        BERTH_GITLAB_CLIENT_ID="gl-client-456", BERTH_GITLAB_URL="https://git.example.org/"
    ):
        assert "/accounts/gitlab/login/" in client.get(reverse("account_login")).content.decode()
        url, query = authorize_redirect(client, "/accounts/gitlab/login/")

    assert url == "https://git.example.org/oauth/authorize"
    assert query["client_id"] == ["gl-client-456"]
    assert query["redirect_uri"] == [CALLBACK.format("gitlab")]
    assert query["scope"] == ["read_user"]


def test_openid_connect_reads_the_issuer_discovery_document(client, oidc_issuer):
    with providers(
        BERTH_OIDC_CLIENT_ID="oidc-client-789",
        BERTH_OIDC_SECRET="oidc-secret",
        BERTH_OIDC_SERVER_URL=oidc_issuer,
        BERTH_OIDC_PROVIDER_ID="corp",
        BERTH_OIDC_NAME="Corp SSO",
    ):
        page = client.get(reverse("account_login")).content.decode()
        assert "/accounts/oidc/corp/login/" in page
        assert "Corp SSO" in page
        url, query = authorize_redirect(client, "/accounts/oidc/corp/login/")

    assert url == f"{oidc_issuer}/authorize"
    assert query["client_id"] == ["oidc-client-789"]
    assert query["redirect_uri"] == ["http://testserver/accounts/oidc/corp/login/callback/"]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email"}


def test_provider_login_needs_a_post(client):
    with providers(BERTH_GITHUB_CLIENT_ID="gh-client-123"):
        response = client.get("/accounts/github/login/")

    assert response.status_code == 200  # a confirmation page, not a cross-site redirect


@override_settings(BERTH_ALLOW_SIGNUP=False)
def test_closed_signup_also_closes_oauth_signup(rf):
    from allauth.socialaccount.adapter import get_adapter

    assert get_adapter(rf.get("/")).is_open_for_signup(rf.get("/"), None) is False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BERTH_OIDC_CLIENT_ID": "x"}, "BERTH_OIDC_SERVER_URL"),
        ({"BERTH_OIDC_CLIENT_ID": "x", "BERTH_OIDC_SERVER_URL": "idp.example"}, "SERVER_URL"),
        (
            {
                "BERTH_OIDC_CLIENT_ID": "x",
                "BERTH_OIDC_SERVER_URL": "https://idp.example",
                "BERTH_OIDC_PROVIDER_ID": "a/b",
            },
            "BERTH_OIDC_PROVIDER_ID",
        ),
        ({"BERTH_GITLAB_CLIENT_ID": "x", "BERTH_GITLAB_URL": "git.example"}, "BERTH_GITLAB_URL"),
    ],
)
def test_bad_provider_settings_name_the_variable(env, named):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=named):
        socialaccount_providers_from_env(env)
