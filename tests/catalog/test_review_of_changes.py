"""A public template's new version or new metadata goes back to review.

Other tenants keep seeing what an admin approved (its approved versions, its approved
name and readme) until an admin approves the change; the publisher sees its change at
once, marked as waiting; the admins' queue lists it.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from apps.catalog import services
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.versions import find_template_version, upgrade_targets
from apps.deployments import services as stack_services
from tests.catalog.conftest import BERTH, COMPOSE
from tests.conftest import login
from tests.deployments.test_api import client_for

pytestmark = pytest.mark.django_db
META = {
    "slug": "shop",
    "name": "Shop",
    "category": "web",
    "description": "Our shop.",
    "maintainer": "Acme",
}
V2 = COMPOSE.replace("berth-demo/web:1.0", "berth-demo/web:2.0")
BERTH_V2 = BERTH + 'upgrade_from: [">=1.0.0 <2.0.0"]\n'


@pytest.fixture
def listed(member, owner, tenant_a, superuser):
    """Acme's template, public and approved at 1.0.0."""
    template = services.publish_template(
        member, tenant_a, META, "1.0.0", COMPOSE, BERTH, "# Shop", visibility="public"
    ).template
    return services.approve_template(superuser, template)


def versions_seen(user, template) -> list[str]:
    seen = TemplateVersion.objects.visible_to(user).filter(template=template)
    return sorted(seen.values_list("version", flat=True))


def test_new_version_waits_while_the_approved_one_stays_listed(
    member, outsider, tenant_b, superuser, listed
):
    new = services.publish_version(member, listed, "2.0.0", V2, BERTH)
    assert new.review == "pending"
    assert listed in Template.objects.visible_to(outsider)  # not hidden
    assert versions_seen(outsider, listed) == ["1.0.0"]
    assert versions_seen(member, listed) == ["1.0.0", "2.0.0"]
    assert list(Template.objects.awaiting_review()) == [listed]

    # Deploying by slug picks the newest version the deployer may see; naming the
    # waiting one is refused as if it did not exist.
    env_b = tenant_b.environments.get(slug="dev")
    found = find_template_version(outsider, tenant_b, "shop")
    assert found.version == "1.0.0"
    with pytest.raises(ValidationError) as exc:
        find_template_version(outsider, tenant_b, "shop", "2.0.0")
    assert "version" in exc.value.message_dict
    with pytest.raises(ValidationError):
        stack_services.create_stack(outsider, env_b, "shop", template_version=new)

    services.approve_template(superuser, listed)
    assert versions_seen(outsider, listed) == ["1.0.0", "2.0.0"]
    assert not Template.objects.awaiting_review().exists()


def test_new_metadata_and_readme_wait_for_review(member, outsider, tenant_b, superuser, listed):
    changed = {**META, "name": "Shop (now with crypto miner)", "description": "Changed."}
    services.publish_template(member, listed.publisher, changed, "1.1.0", V2, BERTH, "# New")
    listed.refresh_from_db()
    assert (listed.name, listed.description, listed.readme) == ("Shop", "Our shop.", "# Shop")
    assert listed.pending_metadata == {
        "name": "Shop (now with crypto miner)",
        "description": "Changed.",
        "readme": "# New",
    }
    assert listed in Template.objects.awaiting_review()

    # The API shows the waiting metadata to the publisher only.
    theirs = client_for(outsider).get(f"/api/v1/templates/{listed.pk}/").json()
    mine = client_for(member).get(f"/api/v1/templates/{listed.pk}/").json()
    assert theirs["name"] == "Shop" and theirs["pending_metadata"] == {}
    assert [v["version"] for v in theirs["versions"]] == ["1.0.0"]
    assert mine["pending_metadata"]["name"] == "Shop (now with crypto miner)"
    assert {v["version"]: v["review"] for v in mine["versions"]} == {
        "1.0.0": "approved",
        "1.1.0": "pending",
    }
    listing = client_for(outsider).get("/api/v1/templates/?publisher=others").json()
    assert [t["versions"] for t in listing["results"]] == [["1.0.0"]]

    services.approve_template(superuser, listed)
    listed.refresh_from_db()
    assert (listed.name, listed.readme, listed.pending_metadata) == (
        "Shop (now with crypto miner)",
        "# New",
        {},
    )


def test_rejected_changes_leave_the_approved_template_as_it_was(
    member, outsider, tenant_b, superuser, listed
):
    services.publish_template(
        member, listed.publisher, {**META, "name": "Other"}, "2.0.0", V2, BERTH
    )
    services.reject_template(superuser, listed, "not reviewed upstream")
    listed.refresh_from_db()
    assert (listed.approval, listed.name, listed.pending_metadata) == ("approved", "Shop", {})
    assert listed.versions.get(version="2.0.0").review == "rejected"
    assert versions_seen(outsider, listed) == ["1.0.0"]
    assert not Template.objects.awaiting_review().exists()
    with pytest.raises(ValidationError):
        services.approve_template(superuser, listed)  # nothing waits any more


def test_upgrades_offered_to_other_tenants_are_approved_versions_only(
    member, outsider, tenant_b, superuser, listed
):
    env_b = tenant_b.environments.get(slug="dev")
    first = listed.versions.get(version="1.0.0")
    stack = stack_services.create_stack(
        outsider, env_b, "shop", template_version=first, answers={"PASSWORD": "x" * 12}
    )
    services.publish_version(member, listed, "2.0.0", V2, BERTH_V2)
    assert [v.version for v in upgrade_targets(stack.template_version, member)] == ["2.0.0"]
    assert upgrade_targets(stack.template_version, outsider) == []
    response = client_for(outsider).post(
        f"/api/v1/stacks/{stack.pk}/upgrade/", {"version": "2.0.0"}, format="json"
    )
    assert response.status_code == 400 and "version" in response.json()
    services.approve_template(superuser, listed)
    assert [v.version for v in upgrade_targets(stack.template_version, outsider)] == ["2.0.0"]


def test_pages_show_the_waiting_version_to_its_publisher_and_the_queue(
    member, outsider, tenant_b, superuser, listed
):
    services.publish_version(member, listed, "2.0.0", V2, BERTH)
    theirs = login(Client(), outsider).get(f"/catalog/{listed.pk}/").content.decode()
    assert "2.0.0" not in theirs
    mine = login(Client(), member).get(f"/catalog/{listed.pk}/").content.decode()
    assert "2.0.0" in mine and "awaiting review" in mine
    queue = login(Client(), superuser).get("/catalog/approvals/").content.decode()
    assert "Shop" in queue and "version 2.0.0" in queue


def test_making_it_private_publishes_the_waiting_metadata_to_its_own_tenant(member, owner, listed):
    services.publish_template(
        member, listed.publisher, {**META, "name": "Renamed"}, "2.0.0", V2, BERTH
    )
    services.make_private(owner, listed)
    listed.refresh_from_db()
    assert (listed.name, listed.pending_metadata, listed.approval) == ("Renamed", {}, "none")
    assert listed.versions.get(version="2.0.0").review == "none"
