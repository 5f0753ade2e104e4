"""Uploading a certificate in a real browser: from the sidebar to the certificates page,
a key that is not the certificate's is refused next to the key field, then the chain
pasted and the key chosen as a file are accepted and the certificate is listed; deleted
after confirming."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.tenants import services as tenant_services
from apps.traffic.models import Certificate
from tests.traffic.test_certificates_page import self_signed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOST = "shop.rockets.test"


def test_upload_a_certificate_through_the_form(visitor, verified_user, tmp_path):
    cora = verified_user("cora")
    tenant_services.create_tenant(actor=cora, slug="rockets", name="Rocket Works")
    chain, key = self_signed(HOST)
    _, wrong_key = self_signed(HOST)
    key_file = tmp_path / "shop.key"
    key_file.write_text(key)

    visitor.log_in("cora")
    page = visitor.page
    page.locator("#sidebar").get_by_role("link", name="Certificates").click()
    page.wait_for_load_state("load")
    visitor.snap("certificates-empty")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Certificates")
    expect(page.locator("#certificates")).to_contain_text("No certificate yet")

    form = page.locator("#certificate-form")
    form.get_by_label("Host name").fill(HOST)
    form.get_by_label("Certificate chain (PEM)").fill(chain)
    form.get_by_label("Private key (PEM)").fill(wrong_key)
    form.get_by_role("button", name="Upload certificate").click()
    page.wait_for_load_state("load")
    visitor.snap("wrong-key")
    key_field = page.locator(".field", has=page.get_by_label("Private key (PEM)"))
    expect(key_field.locator(".field-error")).to_contain_text(
        "This key does not belong to the certificate"
    )
    expect(page.get_by_label("Private key (PEM)")).to_have_value("")  # never sent back
    assert not Certificate.objects.exists()

    form = page.locator("#certificate-form")
    expect(form.get_by_label("Host name")).to_have_value(HOST)
    form.get_by_label("…or the key as a file").set_input_files(str(key_file))
    form.get_by_role("button", name="Upload certificate").click()
    page.wait_for_load_state("load")
    visitor.snap("uploaded")
    expect(page.get_by_text(f"Certificate for {HOST} uploaded")).to_be_visible()
    row = page.locator(f'#certificates tr[data-certificate="{HOST}"]')
    expect(row).to_contain_text("Uploaded")
    expect(row.locator("[data-certificate-state]")).to_have_text("Valid")
    assert Certificate.objects.get(hostname=HOST).tenant.slug == "rockets"

    row.get_by_role("link", name="Delete").click()
    page.wait_for_load_state("load")
    visitor.snap("confirm-delete")
    page.get_by_role("button", name="Delete certificate").click()
    page.wait_for_load_state("load")
    expect(page.get_by_text(f"Certificate for {HOST} deleted.")).to_be_visible()
    expect(page.locator(f'#certificates tr[data-certificate="{HOST}"]')).to_have_count(0)
    assert not Certificate.objects.exists()
    visitor.assert_assets_loaded()
