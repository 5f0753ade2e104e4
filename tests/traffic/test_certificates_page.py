"""The certificates page (/traffic/certificates/): a tenant's certificates with the routes
on their host names, uploads through the form (pasted or as files) with the service's
messages on their fields, deletion, roles, and the stack page's link to it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.deployments import routes as route_services
from apps.deployments import services as stack_services
from apps.deployments.models import Route
from apps.tenants import services as tenant_services
from apps.traffic import certificates
from apps.traffic.certificates import generate_self_signed
from apps.traffic.models import Certificate
from tests.conftest import login

PAGE = "/traffic/certificates/"
HOST = "shop.acme.test"


def self_signed(hostname: str, days: int = 30) -> tuple[str, str]:
    """(certificate PEM, key PEM) naming `hostname`: input for the upload form."""
    bundle = generate_self_signed(hostname, days=days)
    return bundle.chain_pem, bundle.key_pem


@pytest.fixture
def stack_a(tenant_a, owner):
    environment = tenant_a.environments.order_by("pk").first()
    return stack_services.create_stack(
        owner, environment, "shop", compose="services:\n  web:\n    image: nginx:1\n"
    )


def add_route(actor, stack, hostname: str = HOST, tls: str = Route.Tls.NONE) -> Route:
    service = stack.services.get(name="web")
    return route_services.create_route(actor, service, hostname=hostname, port=80, tls=tls)


def route_whose_certificate_went(actor, stack, hostname: str = HOST) -> Route:
    """A route with TLS "uploaded" (refused until the certificate exists) whose
    certificate was deleted afterwards: how a route comes to wait for an upload."""
    certificate = upload(actor, hostname)
    route = add_route(actor, stack, hostname, tls=Route.Tls.UPLOADED)
    certificates.delete_certificate(actor=actor, certificate=certificate)
    return route


def upload(actor, hostname: str = HOST) -> Certificate:
    chain, key = self_signed(hostname)
    return certificates.upload_certificate(
        actor=actor, hostname=hostname, chain_pem=chain, key_pem=key
    )


def client_for(user) -> Client:
    return login(Client(), user)


def test_the_page_lists_my_tenants_certificates_only(db, tenant_a, tenant_b, owner, outsider):
    mine = upload(owner, HOST)
    upload(outsider, "globex.example.test")
    page = client_for(owner).get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert HOST in html
    assert "globex.example.test" not in html
    assert mine.key_pem.strip().splitlines()[1] not in html
    assert mine.key_encrypted not in html
    assert [c.hostname for c in page.context["certificates"]] == [HOST]


def test_a_row_shows_kind_state_expiry_error_and_routes(db, stack_a, owner):
    upload(owner, HOST)
    route = add_route(owner, stack_a, tls=Route.Tls.UPLOADED)
    failed = Certificate.objects.create(
        tenant=stack_a.tenant,
        hostname="later.acme.test",
        kind=Certificate.Kind.ACME,
        state=Certificate.State.FAILED,
        error="The CA said no: rate limited",
    )
    page = client_for(owner).get(PAGE)
    html = page.content.decode()
    rows = {c.hostname: c for c in page.context["certificates"]}
    assert [r.pk for r in rows[HOST].routes] == [route.pk]
    assert rows[failed.hostname].routes == []
    assert "Uploaded" in html and "Valid" in html and "Failed" in html
    assert "The CA said no: rate limited" in html
    assert reverse("stacks:detail", args=[stack_a.pk]) in html


def test_uploading_a_good_certificate_through_the_form(db, stack_a, owner):
    add_route(owner, stack_a)
    chain, key = self_signed(HOST)
    client = client_for(owner)
    answer = client.post(PAGE, {"hostname": HOST, "chain": chain, "key": key})
    assert answer.status_code == 302, answer.content.decode()
    assert answer["Location"] == PAGE
    certificate = Certificate.objects.get(hostname=HOST)
    assert (certificate.tenant, certificate.kind, certificate.state) == (
        stack_a.tenant,
        Certificate.Kind.UPLOADED,
        Certificate.State.VALID,
    )
    assert certificate.key_pem.strip() == key.strip()
    listed = client.get(PAGE)
    assert f"Certificate for {HOST} uploaded" in listed.content.decode()
    assert [c.hostname for c in listed.context["certificates"]] == [HOST]
    assert listed.context["waiting"] == []


def test_uploading_chain_and_key_as_files(db, tenant_a, member):
    chain, key = self_signed(HOST)
    answer = client_for(member).post(
        PAGE,
        {
            "hostname": HOST,
            "chain_file": SimpleUploadedFile("shop.crt", chain.encode()),
            "key_file": SimpleUploadedFile("shop.key", key.encode()),
        },
    )
    assert answer.status_code == 302, answer.content.decode()
    assert Certificate.objects.get(hostname=HOST).tenant == tenant_a


def test_a_binary_file_or_both_ways_at_once_are_errors_on_the_file_field(db, tenant_a, owner):
    chain, key = self_signed(HOST)
    answer = client_for(owner).post(
        PAGE,
        {
            "hostname": HOST,
            "chain": chain,
            "chain_file": SimpleUploadedFile("shop.crt", chain.encode()),
            "key_file": SimpleUploadedFile("shop.der", b"\x30\x82\xff\xfe"),
        },
    )
    assert answer.status_code == 400
    errors = answer.context["form"].errors
    assert errors["chain_file"] == ["Paste the PEM or choose a file, not both."]
    assert errors["key_file"][0].startswith("Not a PEM file")
    assert not Certificate.objects.exists()


def test_a_bad_key_is_a_form_error_on_the_key_field(db, stack_a, owner):
    add_route(owner, stack_a)
    chain, _ = self_signed(HOST)
    _, other_key = self_signed(HOST)
    client = client_for(owner)
    answer = client.post(PAGE, {"hostname": HOST, "chain": chain, "key": other_key})
    assert answer.status_code == 400
    errors = answer.context["form"].errors
    assert list(errors) == ["key"]
    assert errors["key"][0].startswith("This key does not belong to the certificate")
    html = answer.content.decode()
    assert "This key does not belong to the certificate" in html
    assert other_key.strip().splitlines()[1] not in html  # the key is not sent back
    garbage = client.post(PAGE, {"hostname": HOST, "chain": chain, "key": "not a key"})
    assert garbage.status_code == 400
    assert garbage.context["form"].errors["key"][0].startswith("Not a PEM private key")
    assert not Certificate.objects.exists()


def test_nothing_pasted_nor_chosen_is_the_services_message_on_the_chain(db, tenant_a, owner):
    answer = client_for(owner).post(PAGE, {"hostname": HOST})
    assert answer.status_code == 400
    # Both missing PEMs in one answer, not the key's only after a second submit.
    assert answer.context["form"].errors == {
        "chain": ["Paste the certificate chain (PEM)."],
        "key": ["Paste the private key (PEM)."],
    }


@pytest.mark.parametrize("hostname", ["bad host", "*.acme.test", "x" * 253, "-a.test"])
def test_a_bad_host_name_is_an_error_on_the_hostname(db, tenant_a, owner, hostname):
    chain, key = self_signed(HOST)
    answer = client_for(owner).post(PAGE, {"hostname": hostname, "chain": chain, "key": key})
    assert answer.status_code == 400
    assert list(answer.context["form"].errors) == ["hostname"]


def test_a_chain_for_another_name_is_an_error_on_the_hostname(db, tenant_a, owner):
    chain, key = self_signed("other.acme.test")
    answer = client_for(owner).post(PAGE, {"hostname": HOST, "chain": chain, "key": key})
    assert answer.status_code == 400
    assert answer.context["form"].errors["hostname"] == [
        f"The certificate is for other.acme.test, not for {HOST}."
    ]


def test_another_tenants_hostname_is_refused(db, tenant_a, tenant_b, owner, outsider):
    outsider_env = tenant_b.environments.order_by("pk").first()
    theirs = stack_services.create_stack(
        outsider, outsider_env, "web", compose="services:\n  web:\n    image: nginx:1\n"
    )
    add_route(outsider, theirs, hostname="globex.example.test")
    chain, key = self_signed("globex.example.test")
    answer = client_for(owner).post(
        PAGE, {"hostname": "globex.example.test", "chain": chain, "key": key}
    )
    assert answer.status_code == 400
    assert answer.context["form"].errors["hostname"] == [
        "globex.example.test is taken by another tenant."
    ]
    assert not Certificate.objects.exists()


def test_a_viewer_reads_but_cannot_upload_or_delete(db, tenant_a, owner, viewer):
    mine = upload(owner, HOST)
    client = client_for(viewer)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert HOST in html
    assert 'id="certificate-form"' not in html
    assert reverse("traffic:certificate_delete", args=[mine.pk]) not in html
    chain, key = self_signed(HOST)
    assert client.post(PAGE, {"hostname": HOST, "chain": chain, "key": key}).status_code == 403
    delete = reverse("traffic:certificate_delete", args=[mine.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete).status_code == 403
    assert Certificate.objects.get(pk=mine.pk).chain_pem == mine.chain_pem


def test_a_member_deletes_after_confirming(db, stack_a, owner, member):
    mine = upload(owner, HOST)
    add_route(owner, stack_a, tls=Route.Tls.UPLOADED)
    client = client_for(member)
    delete = reverse("traffic:certificate_delete", args=[mine.pk])
    confirm = client.get(delete)
    assert confirm.status_code == 200
    assert f"{HOST}/" in confirm.content.decode()  # the route that loses it is named
    answer = client.post(delete)
    assert answer.status_code == 302
    assert answer["Location"] == PAGE
    assert not Certificate.objects.exists()
    after = client.get(PAGE)
    assert f"Certificate for {HOST} deleted." in after.content.decode()
    assert [r.hostname for r in after.context["waiting"]] == [HOST]  # its route waits now


def test_another_tenant_cannot_see_or_delete_my_certificate(
    db, tenant_a, tenant_b, owner, outsider
):
    mine = upload(owner, HOST)
    client = client_for(outsider)
    delete = reverse("traffic:certificate_delete", args=[mine.pk])
    assert client.get(delete).status_code == 404
    assert client.post(delete).status_code == 404
    assert client.get(f"{PAGE}?tenant=acme").status_code == 404
    assert HOST not in client.get(PAGE).content.decode()
    assert Certificate.objects.filter(pk=mine.pk).exists()


def test_another_of_my_tenants_named_by_slug(db, tenant_a, owner):
    """A stack page links to its own tenant's certificates, the current tenant or not:
    the page, its upload and the way back all stay with the tenant named."""
    second = tenant_services.create_tenant(actor=owner, slug="second", name="Second")
    client = client_for(owner)
    assert client.get(PAGE).context["tenant"] == tenant_a  # the current one
    page = client.get(f"{PAGE}?tenant=second")
    assert page.context["tenant"] == second
    assert page.context["form_action"] == f"{PAGE}?tenant=second"
    chain, key = self_signed(HOST)
    answer = client.post(f"{PAGE}?tenant=second", {"hostname": HOST, "chain": chain, "key": key})
    assert answer.status_code == 302
    assert answer["Location"] == f"{PAGE}?tenant=second"
    certificate = Certificate.objects.get(hostname=HOST)
    assert certificate.tenant == second
    assert client.get(PAGE).context["certificates"] == []
    assert client.get(f"{PAGE}?tenant=second").context["certificates"] == [certificate]
    delete = reverse("traffic:certificate_delete", args=[certificate.pk])
    assert client.get(delete).context["cancel_url"] == f"{PAGE}?tenant=second"
    assert client.post(delete)["Location"] == f"{PAGE}?tenant=second"


def test_routes_waiting_for_an_upload_are_listed_with_a_prefilled_form(db, stack_a, owner):
    route_whose_certificate_went(owner, stack_a)
    add_route(owner, stack_a, hostname="plain.acme.test")
    client = client_for(owner)
    page = client.get(PAGE)
    assert [r.hostname for r in page.context["waiting"]] == [HOST]
    assert f"?hostname={HOST}#upload" in page.content.decode()
    prefilled = client.get(f"{PAGE}?hostname={HOST}")
    assert prefilled.context["form"].initial["hostname"] == HOST


def test_the_stack_routes_table_links_to_the_upload_until_a_certificate_exists(
    db, stack_a, owner, viewer
):
    route_whose_certificate_went(owner, stack_a)
    add_route(owner, stack_a, hostname="plain.acme.test")
    table = reverse("stack_routes:health", args=[stack_a.pk])
    link = f"{PAGE}?tenant=acme&amp;hostname={HOST}#upload"
    client = client_for(owner)
    html = client.get(table).content.decode()
    assert link in html
    assert html.count("data-certificate-missing") == 1
    viewer_html = client_for(viewer).get(table).content.decode()
    assert "No certificate yet" in viewer_html and link not in viewer_html
    upload(owner, HOST)
    html = client.get(table).content.decode()
    assert "data-certificate-missing" not in html


def test_the_route_form_refusing_uploaded_links_to_the_upload(db, stack_a, owner):
    web = stack_a.services.get(name="web")
    form = {"service": web.pk, "hostname": HOST, "path": "/", "port": "80", "tls": "uploaded"}
    answer = client_for(owner).post(reverse("stacks:route_add", args=[stack_a.pk]), form)
    html = answer.content.decode()
    assert f"Upload a certificate for {HOST} first, then choose uploaded." in html
    assert f"{PAGE}?tenant=acme&amp;hostname={HOST}#upload" in html
    assert not Route.objects.exists()


def test_the_sidebar_links_to_the_page(db, tenant_a, owner):
    html = client_for(owner).get("/").content.decode()
    assert f'href="{PAGE}"' in html
    page = client_for(owner).get(PAGE).content.decode()
    assert f'href="{PAGE}" aria-current="page"' in page


def test_without_a_tenant_the_page_says_so(db, make_user):
    loner = make_user("lonely")
    client = client_for(loner)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "Choose or create a tenant first" in page.content.decode()
    chain, key = self_signed(HOST)
    answer = client.post(PAGE, {"hostname": HOST, "chain": chain, "key": key})
    assert answer.status_code == 400
    assert not Certificate.objects.exists()


@pytest.mark.parametrize("slug", ["\x00x", "not a slug", "x" * 300])
def test_a_tenant_parameter_that_is_no_slug_is_a_404(db, tenant_a, owner, slug):
    response = login(Client(), owner).get(PAGE, {"tenant": slug})
    assert response.status_code == 404
