"""A stack deployed with exceptions to the compose policy, as people see it in a browser:
the platform admin confirms them on the deploy form, and everyone then sees the stack
marked with them (desktop and phone)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import RUN_ID

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PRIVILEGED = """services:
  web:
    image: berth-demo/web:1.0
    privileged: true
  logs:
    image: berth-demo/web:1.0
    volumes: ["/var/log:/host-logs:ro"]
"""


def test_admin_confirms_exceptions_and_the_stack_is_marked(visitor_factory, verified_user):
    from apps.core.roles import Role
    from apps.deployments.models import Stack
    from apps.tenants import services as tenant_services
    from apps.tenants.models import Membership

    admin = verified_user(f"root{RUN_ID}")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    member = verified_user(f"mona{RUN_ID}")
    tenant = tenant_services.create_tenant(actor=admin, slug=f"ex{RUN_ID}", name="Exceptions")
    Membership.objects.create(tenant=tenant, user=member, role=Role.MEMBER)

    root = visitor_factory("admin")
    root.log_in(admin.username)
    page = root.visit("/stacks/new/")
    page.get_by_label("Name").fill("hostly")
    page.get_by_label("Compose file").fill(PRIVILEGED)
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_load_state("load")
    root.snap("needs-confirmation")
    box = page.get_by_label(re.compile("I confirm deploying with these exceptions"))
    expect(box).to_be_visible()
    expect(page.get_by_text(re.compile(r"privileged mode \(service web\)")).first).to_be_visible()
    assert not Stack.objects.filter(name="hostly").exists()
    box.check()
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/stacks/\d+/$"))
    mark = page.locator("#policy-exceptions")
    expect(mark).to_contain_text("Uses exceptions to the compose policy")
    expect(mark).to_contain_text("privileged mode (service web, granted by a platform admin)")
    expect(mark).to_contain_text("bind mounts of host paths (/var/log) (service logs")
    root.snap("stack-marked")
    stack_path = page.url.removeprefix(root.base_url)

    for name, options in (
        ("member-desktop", {"viewport": {"width": 1280, "height": 900}}),
        ("member-phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True}),
    ):
        person = visitor_factory(name, **options)
        person.log_in(member.username)
        page = person.visit(stack_path)
        mark = page.locator("#policy-exceptions")
        expect(mark).to_be_visible()
        expect(mark).to_contain_text("needs a platform admin")
        box = mark.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= options["viewport"]["width"] + 1
        person.snap("stack-marked")
        person.assert_assets_loaded()
        page.goto("about:blank")  # the stack page polls: no request in flight at teardown
    root.page.goto("about:blank")
