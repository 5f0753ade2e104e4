"""Registry pages and API: what each role sees and may do, and nothing of other tenants."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from apps.registry import services
from apps.registry.models import RegistryEvent, Repository, RobotAccount, TenantRegistryQuota
from apps.registry.token import credentials
from tests.conftest import PASSWORD, login


@pytest.fixture
def repos(tenant_a, tenant_b):
    return (
        Repository.objects.create(tenant=tenant_a, name="web", size_bytes=2048, pull_count=3),
        Repository.objects.create(tenant=tenant_b, name="globex-secret-app"),
    )


@pytest.fixture(autouse=True)
def unreachable_registry(settings):
    settings.BERTH_REGISTRY_ADDR = "127.0.0.1:9"  # discard port: nothing answers


def client_of(user) -> Client:
    return login(Client(), user)


@pytest.mark.django_db
def test_repository_list_shows_own_tenant_only(repos, owner, outsider):
    body = client_of(owner).get(reverse("registry:list")).content.decode()
    assert "acme/web" in body and "globex-secret-app" not in body
    assert "docker login 127.0.0.1:9" in body
    other = client_of(outsider).get(reverse("registry:list")).content.decode()
    assert "acme/web" not in other and "globex/globex-secret-app" in other


@pytest.mark.django_db
def test_repository_page_survives_an_unreachable_registry(repos, viewer):
    response = client_of(viewer).get(reverse("registry:repository", args=[repos[0].pk]))
    assert response.status_code == 200
    assert "cannot be read right now" in response.content.decode()


@pytest.mark.django_db
def test_foreign_repository_pages_are_404(repos, outsider):
    client = client_of(outsider)
    pk = repos[0].pk
    for url in (
        reverse("registry:repository", args=[pk]),
        reverse("registry:tag", args=[pk, "1.0"]),
        reverse("registry:tag_delete", args=[pk, "1.0"]),
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("registry:visibility", args=[pk]), {"visibility": "public"})
    assert response.status_code == 404
    assert Repository.objects.get(pk=pk).visibility == "private"


@pytest.mark.django_db
def test_visibility_needs_admin(repos, owner, member):
    url = reverse("registry:visibility", args=[repos[0].pk])
    assert client_of(member).post(url, {"visibility": "public"}).status_code == 403
    assert client_of(owner).post(url, {"visibility": "public"}).status_code == 302
    assert Repository.objects.get(pk=repos[0].pk).visibility == "public"


@pytest.mark.django_db
def test_robot_created_on_the_page_shows_its_secret_once(tenant_a, owner):
    client = client_of(owner)
    response = client.post(
        reverse("registry:robot_create"),
        {"name": "ci", "scope": "push", "repositories": "web", "expires_days": "30"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    secret = re.search(r'value="(berthrobot_[^"]+)"', body).group(1)
    robot = RobotAccount.objects.get(tenant=tenant_a, name="ci")
    assert credentials.find_robot(robot.username, secret) == robot
    listing = client.get(reverse("registry:robots")).content.decode()
    assert "robot$acme+ci" in listing and secret not in listing


@pytest.mark.django_db
def test_robot_form_errors_are_shown_not_500(tenant_a, owner, member):
    response = client_of(owner).post(
        reverse("registry:robot_create"), {"name": "Bad!", "scope": "pull"}
    )
    assert response.status_code == 400
    assert "lowercase letters" in response.content.decode()
    assert (
        client_of(member)
        .post(reverse("registry:robot_create"), {"name": "ci", "scope": "pull"})
        .status_code
        == 403
    )
    assert not RobotAccount.objects.exists()


@pytest.mark.django_db
def test_robot_revoke_page(tenant_a, owner, outsider):
    robot, _ = services.create_robot(actor=owner, tenant=tenant_a, name="ci")
    url = reverse("registry:robot_revoke", args=[robot.pk])
    assert client_of(outsider).post(url).status_code == 404
    assert client_of(owner).get(url).status_code == 200
    assert client_of(owner).post(url).status_code == 302
    assert RobotAccount.objects.get(pk=robot.pk).status == "revoked"


@pytest.mark.django_db
def test_usage_page_chart_counts_and_threshold(repos, owner, viewer):
    from django.utils import timezone

    tenant = repos[0].tenant
    for index in range(4):
        RegistryEvent.objects.create(
            tenant=tenant,
            repository=repos[0],
            action="pull",
            tag="1",
            counted=True,
            event_id=f"e{index}",
            timestamp=timezone.now(),
        )
    body = client_of(viewer).get(reverse("registry:usage")).content.decode()
    today = timezone.localdate().isoformat()
    assert f'data-day="{today}" data-pulls="4" data-pushes="0"' in body
    assert "acme/web" in body
    assert (
        client_of(viewer)
        .post(reverse("registry:threshold"), {"pull_alert_threshold": "5"})
        .status_code
        == 403
    )
    response = client_of(owner).post(reverse("registry:threshold"), {"pull_alert_threshold": "-1"})
    assert response.status_code == 400
    client_of(owner).post(reverse("registry:threshold"), {"pull_alert_threshold": "5"})
    assert TenantRegistryQuota.objects.get(tenant=tenant).pull_alert_threshold == 5


@pytest.mark.django_db
def test_gc_button_is_for_platform_admins_only(owner):
    assert client_of(owner).post(reverse("registry:gc")).status_code == 404


# --- API ------------------------------------------------------------------------------------------


def api(user) -> Client:
    return client_of(user)


@pytest.mark.django_db
def test_api_lists_repositories_of_own_tenants(repos, member, outsider):
    listing = api(member).get("/api/v1/registry/repositories/").json()["results"]
    names = [row["full_name"] for row in listing]
    assert names == ["acme/web"]
    assert api(outsider).get(f"/api/v1/registry/repositories/{repos[0].pk}/").status_code == 404
    response = api(outsider).patch(
        f"/api/v1/registry/repositories/{repos[0].pk}/",
        {"visibility": "public"},
        content_type="application/json",
    )
    assert response.status_code == 404
    response = api(member).patch(
        f"/api/v1/registry/repositories/{repos[0].pk}/",
        {"visibility": "public"},
        content_type="application/json",
    )
    assert response.status_code == 403


@pytest.mark.django_db
def test_api_robot_create_returns_secret_once(tenant_a, tenant_b, owner, outsider):
    body = {"tenant": "acme", "name": "ci", "scope": "push", "repositories": ["web"]}
    response = api(owner).post("/api/v1/registry/robots/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("berthrobot_") and created["username"] == "robot$acme+ci"
    detail = api(owner).get(f"/api/v1/registry/robots/{created['id']}/").json()
    assert "secret" not in detail
    foreign = api(outsider).post("/api/v1/registry/robots/", body, content_type="application/json")
    assert foreign.status_code == 400 and "tenant" in foreign.json()
    extra = {**body, "name": "x", "secret_hash": "0" * 64}
    assert (
        api(owner)
        .post("/api/v1/registry/robots/", extra, content_type="application/json")
        .status_code
        == 400
    )
    assert api(outsider).post(f"/api/v1/registry/robots/{created['id']}/revoke/").status_code == 404
    revoked = api(owner).post(f"/api/v1/registry/robots/{created['id']}/revoke/")
    assert revoked.json()["status"] == "revoked"


@pytest.mark.django_db
def test_api_usage_and_quota(repos, owner, superuser, outsider):
    summary = api(owner).get("/api/v1/registry/usage/acme/").json()
    assert summary["tenant"] == "acme" and len(summary["daily"]) == 14
    assert api(outsider).get("/api/v1/registry/usage/acme/").status_code == 404
    assert [s["tenant"] for s in api(outsider).get("/api/v1/registry/usage/").json()] == ["globex"]
    quota = api(owner).patch(
        "/api/v1/registry/usage/acme/", {"quota_bytes": 10**12}, content_type="application/json"
    )
    assert quota.status_code == 403
    assert (
        api(superuser)
        .patch(
            "/api/v1/registry/usage/acme/", {"quota_bytes": 10**9}, content_type="application/json"
        )
        .json()["quota_bytes"]
        == 10**9
    )
    assert (
        api(owner)
        .patch(
            "/api/v1/registry/usage/acme/",
            {"pull_alert_threshold": 7},
            content_type="application/json",
        )
        .json()["pull_alert_threshold"]
        == 7
    )


# --- with the real registry: tags, layers, config, delete ----------------------------------------


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_repository_and_tag_pages_with_a_real_registry(
    registry, settings, docker_cli, tiny_image, tenant_a, owner, member, viewer
):
    settings.BERTH_REGISTRY_ADDR = registry.addr
    name = f"browse-{uuid.uuid4().hex[:6]}"
    assert docker_cli.login(registry, member.username, PASSWORD).returncode == 0
    for tag in ("1.0", "2.0"):
        assert (
            docker_cli.push(
                docker_cli.tag(tiny_image, registry.ref(f"acme/{name}", tag))
            ).returncode
            == 0
        )
    repository, _ = Repository.objects.get_or_create(tenant=tenant_a, name=name)
    page = client_of(viewer).get(reverse("registry:repository", args=[repository.pk]))
    body = page.content.decode()
    assert f"docker pull {registry.addr}/acme/{name}:1.0" in body
    assert "sha256:" in body and "Delete" not in body  # viewers do not delete
    tag_page = client_of(viewer).get(reverse("registry:tag", args=[repository.pk, "1.0"]))
    tag_body = tag_page.content.decode()
    assert "/bin/busybox" in tag_body and "io.berth.test=registry" in tag_body
    tags = api(viewer).get(f"/api/v1/registry/repositories/{repository.pk}/tags/").json()
    assert sorted(t["tag"] for t in tags) == ["1.0", "2.0"]
    assert all(t["digest"].startswith("sha256:") and t["size"] > 500_000 for t in tags)
    assert (
        api(member)
        .post(
            f"/api/v1/registry/repositories/{repository.pk}/delete-tag/",
            {"tag": "1.0"},
            content_type="application/json",
        )
        .status_code
        == 403
    )
    deleted = client_of(owner).post(reverse("registry:tag_delete", args=[repository.pk, "1.0"]))
    assert deleted.status_code == 302
    left = api(viewer).get(f"/api/v1/registry/repositories/{repository.pk}/tags/").json()
    # Both tags pointed at the same image: deleting by digest removes both.
    assert left == []
    missing = api(owner).post(
        f"/api/v1/registry/repositories/{repository.pk}/delete-tag/",
        {"tag": "1.0"},
        content_type="application/json",
    )
    assert missing.status_code == 400 and "tag" in json.loads(missing.content)


# --- public repositories of other tenants: readable, never changeable -----------------------


@pytest.fixture
def public_repo(repos):
    web = repos[0]
    Repository.objects.filter(pk=web.pk).update(visibility=Repository.Visibility.PUBLIC)
    return Repository.objects.get(pk=web.pk)


@pytest.mark.django_db
def test_public_repository_is_listed_and_readable_by_any_signed_in_user(public_repo, outsider):
    client = client_of(outsider)
    listing = client.get(reverse("registry:list")).content.decode()
    assert "Public images" in listing and "acme/web" in listing
    assert "docker pull 127.0.0.1:9/acme/web:TAG" in listing
    assert "globex-secret-app" in listing  # the outsider's own, private, still listed
    page = client.get(reverse("registry:repository", args=[public_repo.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "any signed-in user may pull it" in body
    assert "Push command" not in body and "Pulls and pushes, last 14 days" not in body
    assert "Make private" not in body
    assert client.get(reverse("registry:tag", args=[public_repo.pk, "1.0"])).status_code in (
        200,
        503,
    )


@pytest.mark.django_db
def test_public_repository_cannot_be_changed_by_another_tenant(public_repo, outsider):
    client = client_of(outsider)
    assert (
        client.get(reverse("registry:tag_delete", args=[public_repo.pk, "1.0"])).status_code == 404
    )
    response = client.post(
        reverse("registry:visibility", args=[public_repo.pk]), {"visibility": "private"}
    )
    assert response.status_code == 404
    assert Repository.objects.get(pk=public_repo.pk).is_public


@pytest.mark.django_db
def test_private_repositories_stay_hidden_from_the_public_listing(repos, outsider, client):
    body = client_of(outsider).get(reverse("registry:list")).content.decode()
    assert "Public images" not in body and "acme/web" not in body
    assert client.get(reverse("registry:repository", args=[repos[0].pk])).status_code == 302


@pytest.mark.django_db
def test_api_public_listing_and_read_only_access(public_repo, repos, outsider, member):
    client = api(outsider)
    own = client.get("/api/v1/registry/repositories/").json()["results"]
    assert [row["full_name"] for row in own] == ["globex/globex-secret-app"]
    public = client.get("/api/v1/registry/repositories/?public=true").json()["results"]
    assert [row["full_name"] for row in public] == ["acme/web"]
    url = f"/api/v1/registry/repositories/{public_repo.pk}/"
    assert client.get(url).status_code == 200
    for method, path, body in (
        ("patch", url, {"visibility": "private"}),
        ("post", url + "delete-tag/", {"tag": "1.0"}),
    ):
        response = getattr(client, method)(path, body, content_type="application/json")
        assert response.status_code == 404, (method, path)
    assert Repository.objects.get(pk=public_repo.pk).is_public
    bad = client.get("/api/v1/registry/repositories/?public=maybe")
    assert bad.status_code == 400 and "public" in bad.json()
    # The other side: the owner tenant's member still reads everything of its own.
    assert api(member).get(url).status_code == 200
    private = f"/api/v1/registry/repositories/{repos[1].pk}/"
    assert api(member).get(private).status_code == 404
