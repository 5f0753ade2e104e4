"""The token endpoint without the registry: claims field by field, credentials, errors."""

from __future__ import annotations

import base64
import hashlib
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from apps.accounts.services import create_token
from apps.registry.models import Repository
from apps.registry.services import create_robot
from apps.registry.token.credentials import deployer_credentials, publisher_credentials
from apps.registry.token.keys import ensure_signing_key, libtrust_kid
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
URL = "/registry/token/"


def basic(username: str, password: str) -> dict:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def ask(client, *scopes, creds=None, service="berth-registry"):
    params = {"service": service, "scope": list(scopes)}
    return client.get(URL, params, **(basic(*creds) if creds else {}))


def certificate():
    _, cert_path = ensure_signing_key()
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def decode(token: str) -> dict:
    return jwt.decode(
        token,
        certificate().public_key(),
        algorithms=["ES256"],
        audience="berth-registry",
        issuer="berth",
    )


def test_claims_field_by_field(client, tenant_a, member):
    before = int(time.time())
    answer = ask(client, "repository:acme/web:pull,push", creds=(member.username, PASSWORD))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert 0 < body["expires_in"] <= 300

    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256"
    # kid: the libtrust fingerprint of the certificate's key, recomputed independently.
    der = (
        certificate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert header["kid"] == ":".join(b32[i : i + 4] for i in range(0, 48, 4))
    assert header["kid"] == libtrust_kid(certificate().public_key())

    claims = decode(body["token"])
    assert set(claims) == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert claims["iss"] == settings.BERTH_REGISTRY_ISSUER == "berth"
    assert claims["sub"] == member.username
    assert claims["aud"] == "berth-registry"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["nbf"] <= claims["iat"]
    assert claims["exp"] - claims["iat"] == body["expires_in"] <= 300
    assert len(claims["jti"]) >= 16
    assert claims["access"] == [
        {"type": "repository", "name": "acme/web", "actions": ["pull", "push"]}
    ]
    again = decode(
        ask(client, "repository:acme/web:pull", creds=(member.username, PASSWORD)).json()["token"]
    )
    assert again["jti"] != claims["jti"]


def test_login_without_scope_gets_empty_access(client, tenant_a, member):
    answer = client.get(
        URL,
        {"service": "berth-registry", "account": member.username},
        **basic(member.username, PASSWORD),
    )
    assert answer.status_code == 200
    assert decode(answer.json()["token"])["access"] == []


@pytest.mark.parametrize(
    "header",
    ["Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode()],
)
def test_malformed_credentials_are_401(client, header):
    answer = client.get(URL, {"service": "berth-registry"}, HTTP_AUTHORIZATION=header)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Basic ")


def test_bad_password_is_401_with_challenge(client, tenant_a, member):
    answer = ask(client, "repository:acme/web:pull", creds=(member.username, "wrong"))
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Basic realm="berth-registry"'
    assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_unknown_service_is_400(client, tenant_a, member):
    answer = ask(
        client, "repository:acme/web:pull", creds=(member.username, PASSWORD), service="other"
    )
    assert answer.status_code == 400


def test_roles_map_to_actions(client, tenant_a, owner, member, viewer):
    asked = "repository:acme/web:pull,push,delete"
    expected = {
        owner: ["pull", "push", "delete"],
        member: ["pull", "push"],
        viewer: ["pull"],
    }
    for user, actions in expected.items():
        token = ask(client, asked, creds=(user.username, PASSWORD)).json()["token"]
        assert decode(token)["access"] == [
            {"type": "repository", "name": "acme/web", "actions": actions}
        ]


def test_outsider_gets_nothing_private_and_pull_on_public(client, tenant_a, tenant_b, outsider):
    creds = (outsider.username, PASSWORD)
    token = ask(client, "repository:acme/web:pull,push", creds=creds).json()["token"]
    assert decode(token)["access"] == []
    Repository.objects.create(tenant=tenant_a, name="web", visibility="public")
    token = ask(client, "repository:acme/web:pull,push", creds=creds).json()["token"]
    assert decode(token)["access"] == [
        {"type": "repository", "name": "acme/web", "actions": ["pull"]}
    ]


def test_anonymous_pull_only_when_allowed(client, settings, tenant_a):
    Repository.objects.create(tenant=tenant_a, name="web", visibility="public")
    Repository.objects.create(tenant=tenant_a, name="secret")
    scopes = ("repository:acme/web:pull", "repository:acme/secret:pull")
    settings.BERTH_REGISTRY_ANONYMOUS_PULL = False
    assert decode(ask(client, *scopes).json()["token"])["access"] == []
    settings.BERTH_REGISTRY_ANONYMOUS_PULL = True
    claims = decode(ask(client, *scopes).json()["token"])
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": "acme/web", "actions": ["pull"]}]


def test_catalog_only_for_platform_admins(client, tenant_a, owner, superuser):
    for user, access in (
        (owner, []),
        (superuser, [{"type": "registry", "name": "catalog", "actions": ["*"]}]),
    ):
        token = ask(client, "registry:catalog:*", creds=(user.username, PASSWORD)).json()["token"]
        assert decode(token)["access"] == access


def test_tenant_bound_token_narrows_to_its_tenant(client, tenant_a, tenant_b, owner, outsider):
    from apps.tenants.models import Membership

    Membership.objects.create(tenant=tenant_b, user=owner, role="member")
    _, raw = create_token(actor=owner, name="acme-only", tenant=tenant_a)
    token = ask(
        client,
        "repository:acme/web:push",
        "repository:globex/web:push",
        creds=(owner.username, raw),
    ).json()["token"]
    assert decode(token)["access"] == [
        {"type": "repository", "name": "acme/web", "actions": ["push"]}
    ]
    assert ask(client, "repository:acme/web:pull", creds=("someone-else", raw)).status_code == 401


def test_robot_rights(client, tenant_a, owner):
    _, secret = create_robot(
        actor=owner, tenant=tenant_a, name="ci", scope="pull", repositories=["web"]
    )
    token = ask(
        client,
        "repository:acme/web:pull,push",
        "repository:acme/api:pull",
        creds=("robot$acme+ci", secret),
    ).json()["token"]
    claims = decode(token)
    assert claims["sub"] == "robot$acme+ci"
    assert claims["access"] == [{"type": "repository", "name": "acme/web", "actions": ["pull"]}]
    assert ask(client, "repository:acme/web:pull", creds=("robot$acme+ci", "x")).status_code == 401


def test_deployer_credential_pulls_own_tenant_only(client, tenant_a, tenant_b):
    user, password = deployer_credentials("acme")
    token = ask(
        client,
        "repository:acme/web:pull,push",
        "repository:globex/web:pull",
        creds=(user, password),
    ).json()["token"]
    assert decode(token)["access"] == [
        {"type": "repository", "name": "acme/web", "actions": ["pull"]}
    ]
    # The signature binds the tenant: renaming the user does not move it to globex.
    assert (
        ask(
            client, "repository:globex/web:pull", creds=("berth-deployer$globex", password)
        ).status_code
        == 401
    )


def test_publisher_credential_pushes_own_tenant_only(client, tenant_a, tenant_b):
    user, password = publisher_credentials("acme")
    assert user == "berth-publisher$acme"
    token = ask(
        client,
        "repository:acme/web:pull,push,delete",
        "repository:globex/web:pull,push",
        creds=(user, password),
    ).json()["token"]
    assert decode(token)["access"] == [
        {"type": "repository", "name": "acme/web", "actions": ["pull", "push"]}
    ]
    # Bound to the tenant and to its purpose: neither another tenant's name nor the
    # deployer's name (pull-only) accepts it, and a deployer's password is no publisher's.
    for name in ("berth-publisher$globex", "berth-deployer$acme"):
        assert ask(client, "repository:acme/web:pull", creds=(name, password)).status_code == 401
    _, deployer_password = deployer_credentials("acme")
    refused = ask(client, "repository:acme/web:push", creds=(user, deployer_password))
    assert refused.status_code == 401


def test_short_lived_credentials_expire(client, tenant_a, monkeypatch):
    user, password = publisher_credentials("acme")
    deployer, deployer_password = deployer_credentials("acme")
    monkeypatch.setattr("apps.registry.token.credentials.DEPLOYER_SECONDS", -1)
    assert ask(client, "repository:acme/web:push", creds=(user, password)).status_code == 401
    answer = ask(client, "repository:acme/web:pull", creds=(deployer, deployer_password))
    assert answer.status_code == 401


def test_repeated_failures_are_throttled(client, tenant_a, member):
    from django.core.cache import cache

    cache.clear()
    for _ in range(10):
        assert ask(client, creds=("marcus", "guess")).status_code == 401
    answer = ask(client, creds=("marcus", PASSWORD))
    assert answer.status_code == 429
    assert answer.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    # Another username from the same address is not affected.
    assert ask(client, creds=("vera", PASSWORD)).status_code == 200
    cache.clear()
