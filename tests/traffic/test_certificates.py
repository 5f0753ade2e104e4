"""Certificates: upload checks, keys encrypted at rest, the files the frontier reads,
the certificates routes ask for, and the API with its tenant boundaries."""

from __future__ import annotations

import datetime
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import current_app
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apps.accounts import services as token_services
from apps.deployments import services as stack_services
from apps.deployments.models import HostnameClaim, Route
from apps.deployments.routes import claim_hostname, release_unused_claims
from apps.deployments.signals import frontier_changed
from apps.traffic import certificates, tasks
from apps.traffic.models import AcmeChallenge, Certificate

HOST = "shop.acme.test"
API = "/api/v1/certificates/"

# --- a small PKI for the upload tests ----------------------------------------------------------


@dataclass
class Issued:
    certificate: x509.Certificate
    key: object

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    dns: tuple[str, ...] | None = None,
    ca: bool = False,
    days: float = 30,
    start_days: float = -1,
    key: object | None = None,
) -> Issued:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = timezone.now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        names = [x509.DNSName(d) for d in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = issue("Test Root", ca=True, days=3650)
    intermediate = issue("Test Intermediate", root, ca=True, days=1000)
    return {
        "root": root,
        "intermediate": intermediate,
        "leaf": issue(HOST, intermediate, dns=(HOST, "www." + HOST)),
        "wildcard": issue("*.acme.test", intermediate, dns=("*.acme.test",)),
    }


def chain_of(*parts: Issued) -> str:
    return "".join(part.pem for part in parts)


# --- upload checks -----------------------------------------------------------------------------


def test_a_good_chain_is_kept_in_order_with_its_expiry(pki):
    leaf, intermediate = pki["leaf"], pki["intermediate"]
    bundle = certificates.parse_bundle(HOST, chain_of(leaf, intermediate), leaf.key_pem)
    assert bundle.chain_pem == chain_of(leaf, intermediate)
    assert bundle.not_after == leaf.certificate.not_valid_after_utc


def test_a_wildcard_covers_one_label_only(pki):
    wildcard = pki["wildcard"]
    certificates.parse_bundle("shop.acme.test", wildcard.pem, wildcard.key_pem)
    for other in ("acme.test", "a.shop.acme.test"):
        with pytest.raises(ValidationError) as caught:
            certificates.parse_bundle(other, wildcard.pem, wildcard.key_pem)
        assert "not for " + other in caught.value.message_dict["hostname"][0]


def refusal(hostname, chain, key) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        certificates.parse_bundle(hostname, chain, key)
    return caught.value.message_dict


def test_text_that_is_not_pem_is_refused_on_its_field(pki):
    assert "Not a PEM certificate chain" in refusal(HOST, "hello", pki["leaf"].key_pem)["chain"][0]
    assert "Not a PEM private key" in refusal(HOST, pki["leaf"].pem, "hello")["key"][0]
    assert "Paste the certificate chain" in refusal(HOST, "", pki["leaf"].key_pem)["chain"][0]


def test_a_key_pasted_into_the_chain_is_refused(pki):
    leaf = pki["leaf"]
    assert "key field" in refusal(HOST, leaf.pem + leaf.key_pem, leaf.key_pem)["chain"][0]


def test_an_encrypted_key_is_refused(pki):
    leaf = pki["leaf"]
    encrypted = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-passphrase"),
    ).decode()
    assert "passphrase" in refusal(HOST, leaf.pem, encrypted)["key"][0]


def test_a_weak_rsa_key_is_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issued = issue(HOST, dns=(HOST,), key=weak)
    assert "2048 bits" in refusal(HOST, issued.pem, issued.key_pem)["key"][0]


def test_a_key_of_another_certificate_is_refused(pki):
    other = issue(HOST, pki["intermediate"], dns=(HOST,))
    assert "does not belong" in refusal(HOST, pki["leaf"].pem, other.key_pem)["key"][0]


def test_a_chain_with_the_issuer_first_is_refused(pki):
    leaf, intermediate = pki["leaf"], pki["intermediate"]
    message = refusal(HOST, chain_of(intermediate, leaf), leaf.key_pem)["chain"][0]
    assert "belongs to certificate 2" in message


def test_a_chain_out_of_order_is_refused(pki):
    leaf, root = pki["leaf"], pki["root"]
    message = refusal(HOST, chain_of(leaf, root), leaf.key_pem)["chain"][0]
    assert "did not issue certificate 1" in message


def test_an_expired_or_future_certificate_is_refused(pki):
    expired = issue(HOST, pki["intermediate"], dns=(HOST,), start_days=-10, days=-1)
    assert "expired" in refusal(HOST, expired.pem, expired.key_pem)["chain"][0]
    future = issue(HOST, pki["intermediate"], dns=(HOST,), start_days=2, days=20)
    assert "not valid before" in refusal(HOST, future.pem, future.key_pem)["chain"][0]


def test_a_certificate_for_another_name_or_no_name_is_refused(pki):
    leaf = pki["leaf"]
    message = refusal("other.acme.test", leaf.pem, leaf.key_pem)["hostname"][0]
    assert message == f"The certificate is for {HOST}, www.{HOST}, not for other.acme.test."
    bare = issue(HOST, pki["intermediate"])
    assert "subjectAltName" in refusal(HOST, bare.pem, bare.key_pem)["chain"][0]


def test_a_self_signed_certificate_passes_the_upload_checks():
    bundle = certificates.generate_self_signed(HOST)
    checked = certificates.parse_bundle(HOST, bundle.chain_pem, bundle.key_pem)
    assert checked.not_after > timezone.now() + datetime.timedelta(days=80)


# --- rows, files, routes -----------------------------------------------------------------------


@pytest.fixture
def stack_a(tenant_a, owner):
    environment = tenant_a.environments.order_by("pk").first()
    return stack_services.create_stack(
        owner, environment, "shop", compose="services:\n  web:\n    image: nginx:1\n"
    )


def route_for(stack, hostname: str = HOST, tls: str = "none", path: str = "/") -> Route:
    HostnameClaim.objects.get_or_create(hostname=hostname, defaults={"tenant": stack.tenant})
    return Route.objects.create(
        tenant=stack.tenant,
        stack=stack,
        service=stack.services.get(name="web"),
        hostname=hostname,
        path=path,
        port=80,
        tls=tls,
    )


def test_the_key_is_encrypted_at_rest(db, stack_a, owner, pki):
    route_for(stack_a)
    leaf = pki["leaf"]
    certificate = certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key_encrypted FROM traffic_certificate WHERE id = %s", [certificate.pk]
        )
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored
    assert leaf.key_pem.splitlines()[1] not in stored
    assert Certificate.objects.get(pk=certificate.pk).key_pem == leaf.key_pem


def test_certificate_files_writes_a_private_bundle_per_served_host(db, stack_a, owner, pki):
    route_for(stack_a)
    leaf, intermediate = pki["leaf"], pki["intermediate"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=chain_of(leaf, intermediate), key_pem=leaf.key_pem
    )
    files = certificates.certificate_files()
    assert list(files) == [HOST]
    path = Path(files[HOST])
    assert path.parent.name == "certs"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.index(leaf.pem.strip()) < text.index(intermediate.pem.strip())
    assert leaf.key_pem.strip() in text


def test_a_renewed_certificate_is_a_new_file(db, stack_a, owner, pki):
    route_for(stack_a)
    first = pki["leaf"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=first.pem, key_pem=first.key_pem
    )
    before = certificates.certificate_files()[HOST]
    second = issue(HOST, pki["intermediate"], dns=(HOST,))
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=second.pem, key_pem=second.key_pem
    )
    after = certificates.certificate_files()[HOST]
    assert after != before
    assert second.pem.strip() in Path(after).read_text()


def test_a_superseded_file_goes_an_hour_after_it_was_last_listed(db, stack_a, owner, pki):
    route_for(stack_a)
    first, second = pki["leaf"], issue(HOST, pki["intermediate"], dns=(HOST,))
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=first.pem, key_pem=first.key_pem
    )
    old = Path(certificates.certificate_files()[HOST])
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=second.pem, key_pem=second.key_pem
    )
    new = Path(certificates.certificate_files()[HOST])
    assert old.exists()  # a frontier going back to its previous configuration finds it
    an_hour_ago = time.time() - certificates.STALE_FILE_SECONDS - 1
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(new, (an_hour_ago, an_hour_ago))
    assert certificates.certificate_files() == {HOST: str(new)}
    assert not old.exists()
    assert new.exists()


def test_a_key_that_cannot_be_decrypted_is_skipped_not_a_crash(db, stack_a, owner, pki, settings):
    route_for(stack_a)
    leaf = pki["leaf"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    written = Path(certificates.certificate_files()[HOST])  # already, for the frontier
    settings.SECRET_KEY = "another-secret-key-than-the-one-that-encrypted-it"
    assert certificates.certificate_files() == {HOST: str(written)}  # no decryption needed
    written.unlink()
    assert certificates.certificate_files() == {}


def test_only_the_claim_holder_certificate_is_served(db, stack_a, tenant_b, owner, pki):
    route_for(stack_a)
    leaf = pki["leaf"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    HostnameClaim.objects.filter(hostname=HOST).update(tenant=tenant_b)
    assert certificates.certificate_files() == {}


def test_out_of_date_certificates_are_not_served(db, stack_a, owner, pki):
    route_for(stack_a)
    leaf = pki["leaf"]
    certificate = certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    Certificate.objects.filter(pk=certificate.pk).update(
        not_after=timezone.now() - datetime.timedelta(minutes=1)
    )
    assert certificates.certificate_files() == {}
    certificates.maintain()
    assert Certificate.objects.get(pk=certificate.pk).state == Certificate.State.EXPIRED


def test_acme_challenges_are_what_the_table_holds(db, stack_a):
    certificate = Certificate.objects.create(tenant=stack_a.tenant, hostname=HOST, kind="acme")
    AcmeChallenge.objects.create(certificate=certificate, token="tok-en_1", key_authorization="k.a")
    assert certificates.acme_challenges() == {"tok-en_1": "k.a"}


def test_a_self_signed_route_gets_a_certificate_and_the_frontier_hears_of_it(db, stack_a):
    route_for(stack_a, tls="self-signed")
    heard = []

    def listen(sender, reason="", **kwargs):
        heard.append(reason)

    frontier_changed.connect(listen, dispatch_uid="test-listen")
    try:
        assert certificates.needs_certificates(stack_a.pk)
        assert certificates.ensure_certificates(stack_a.pk) == []
    finally:
        frontier_changed.disconnect(dispatch_uid="test-listen")
    certificate = Certificate.objects.get(hostname=HOST)
    assert (certificate.kind, certificate.state) == ("self-signed", "valid")
    assert certificate.tenant == stack_a.tenant
    assert heard == ["certificate generated"]
    assert not certificates.needs_certificates(stack_a.pk)
    assert HOST in certificates.certificate_files()


def test_an_upload_is_not_replaced_by_a_self_signed_one(db, stack_a, owner, pki):
    route_for(stack_a, tls="self-signed")
    leaf = pki["leaf"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    certificates.ensure_certificates()
    assert Certificate.objects.get(hostname=HOST).kind == "uploaded"


def test_a_self_signed_certificate_near_its_end_is_regenerated(db, stack_a):
    route_for(stack_a, tls="self-signed")
    certificates.ensure_certificates()
    old = Certificate.objects.get(hostname=HOST)
    Certificate.objects.filter(pk=old.pk).update(
        not_after=timezone.now() + datetime.timedelta(days=3)
    )
    certificates.maintain()
    new = Certificate.objects.get(hostname=HOST)
    assert new.chain_pem != old.chain_pem
    assert new.not_after > timezone.now() + datetime.timedelta(days=80)


def test_acme_off_says_so_on_the_certificate(db, stack_a, settings):
    settings.BERTH_ACME_DIRECTORY = ""
    route_for(stack_a, tls="acme")
    assert certificates.ensure_certificates() == []
    certificate = Certificate.objects.get(hostname=HOST)
    assert certificate.state == "failed"
    assert "BERTH_ACME_DIRECTORY" in certificate.error
    assert certificates.acme_problem() == certificate.error


def test_a_former_holder_certificate_is_replaced(db, stack_a, tenant_b, pki):
    leaf = pki["leaf"]
    Certificate.objects.create(
        tenant=tenant_b, hostname=HOST, kind="uploaded", chain_pem=leaf.pem, state="valid"
    )
    route_for(stack_a, tls="self-signed")
    certificates.ensure_certificates()
    certificate = Certificate.objects.get(hostname=HOST)
    assert (certificate.tenant, certificate.kind) == (stack_a.tenant, "self-signed")


@pytest.fixture
def eager_tasks():
    previous = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = previous


def test_a_route_change_queues_the_certificate_it_asks_for(
    db, stack_a, eager_tasks, django_capture_on_commit_callbacks
):
    route_for(stack_a, tls="self-signed")
    with django_capture_on_commit_callbacks(execute=True) as queued:
        frontier_changed.send(sender=Route, stack_id=stack_a.pk, reason="route created")
    assert len(queued) == 1
    assert Certificate.objects.get(hostname=HOST).state == "valid"
    with django_capture_on_commit_callbacks(execute=True) as queued:
        frontier_changed.send(sender=Route, stack_id=stack_a.pk, reason="route updated")
    assert queued == []  # nothing missing: nothing queued


def test_beat_runs_the_maintenance_task(db, stack_a, eager_tasks, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["traffic.certificates"]
    assert entry["task"] == tasks.maintain_certificates.name
    settings.BERTH_ACME_DIRECTORY = ""
    route_for(stack_a, tls="acme")
    route_for(stack_a, hostname="dev.acme.test", tls="self-signed")
    assert tasks.maintain_certificates.apply().get() == 0  # ACME off: nothing to order
    states = dict(Certificate.objects.values_list("hostname", "state"))
    assert states == {HOST: "failed", "dev.acme.test": "valid"}


# --- the API -----------------------------------------------------------------------------------


def upload_body(issued: Issued, hostname: str = HOST, **extra) -> dict:
    return {"hostname": hostname, "chain": issued.pem, "key": issued.key_pem, **extra}


def test_upload_list_and_delete_through_the_api(db, stack_a, owner_client, pki):
    route_for(stack_a)
    created = owner_client.post(API, upload_body(pki["leaf"]), content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["hostname"], body["kind"], body["state"], body["tenant"]) == (
        HOST,
        "uploaded",
        "valid",
        "acme",
    )
    listed = owner_client.get(API)
    assert [row["hostname"] for row in listed.json()["results"]] == [HOST]
    for answer in (created, listed, owner_client.get(f"{API}{body['id']}/")):
        assert b"PRIVATE KEY" not in answer.content
        assert b"key_encrypted" not in answer.content
    deleted = owner_client.delete(f"{API}{body['id']}/")
    assert deleted.status_code == 204
    assert not Certificate.objects.exists()


def test_a_bad_upload_is_a_400_naming_the_field(db, stack_a, owner_client, pki):
    route_for(stack_a)
    answer = owner_client.post(
        API, upload_body(pki["leaf"], hostname="other.acme.test"), content_type="application/json"
    )
    assert answer.status_code == 400
    assert "hostname" in answer.json()
    answer = owner_client.post(
        API, {"hostname": HOST, "chain": "x", "key": "y"}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert "chain" in answer.json()
    answer = owner_client.post(
        API, {**upload_body(pki["leaf"]), "state": "valid"}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert "state" in answer.json()


def test_a_free_host_name_is_claimed_by_the_upload(db, tenant_a, owner_client, pki):
    answer = owner_client.post(API, upload_body(pki["leaf"]), content_type="application/json")
    assert answer.status_code == 201, answer.content
    assert HostnameClaim.objects.get(hostname=HOST).tenant == tenant_a


def test_a_certificate_with_a_malformed_extension_is_a_400(db, tenant_a, owner_client):
    """It loads as PEM; cryptography only fails when the SAN is read."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtensionOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    broken = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(broken, critical=False)
        .sign(key, hashes.SHA256())
    )
    body = {
        "hostname": HOST,
        "chain": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }
    answer = owner_client.post(API, body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["chain"][0].startswith("Unreadable certificate")


def test_a_certificate_holds_its_host_name_before_any_route_uses_it(
    db, tenant_a, tenant_b, owner_client, outsider_client, pki
):
    """Another tenant can neither upload over my certificate nor route the name (which
    would replace it) just because no route uses the name yet."""
    answer = owner_client.post(API, upload_body(pki["leaf"]), content_type="application/json")
    assert answer.status_code == 201, answer.content
    answer = outsider_client.post(API, upload_body(pki["leaf"]), content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["hostname"] == [f"{HOST} is taken by another tenant."]
    with pytest.raises(ValidationError):
        claim_hostname(tenant_b, HOST)
    release_unused_claims(tenant_a)
    assert HostnameClaim.objects.get(hostname=HOST).tenant == tenant_a
    assert list(Certificate.objects.values_list("tenant", flat=True)) == [tenant_a.pk]


def test_another_tenant_cannot_upload_for_my_host_name(db, stack_a, tenant_b, outsider_client, pki):
    route_for(stack_a)
    answer = outsider_client.post(API, upload_body(pki["leaf"]), content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["hostname"] == [f"{HOST} is taken by another tenant."]
    answer = outsider_client.post(
        API, upload_body(pki["leaf"], tenant="acme"), content_type="application/json"
    )
    assert answer.status_code == 400
    assert not Certificate.objects.exists()


def test_another_tenant_cannot_see_or_delete_my_certificate(
    db, stack_a, tenant_b, owner, outsider, outsider_client, pki
):
    route_for(stack_a)
    leaf = pki["leaf"]
    mine = certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    assert outsider_client.get(API).json()["results"] == []
    assert outsider_client.get(f"{API}{mine.pk}/").status_code == 404
    assert outsider_client.delete(f"{API}{mine.pk}/").status_code == 404
    _, raw = token_services.create_token(actor=outsider, name="cli")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert outsider_client.delete(f"{API}{mine.pk}/", **bearer).status_code == 404
    assert Certificate.objects.filter(pk=mine.pk).exists()


def test_a_viewer_can_see_but_not_upload_or_delete(db, stack_a, owner, viewer, client, pki):
    route_for(stack_a)
    leaf = pki["leaf"]
    mine = certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    client.force_login(viewer, backend="django.contrib.auth.backends.ModelBackend")
    assert [row["id"] for row in client.get(API).json()["results"]] == [mine.pk]
    other = issue(HOST, pki["intermediate"], dns=(HOST,))
    answer = client.post(API, upload_body(other), content_type="application/json")
    assert answer.status_code == 403
    assert client.delete(f"{API}{mine.pk}/").status_code == 403
    assert Certificate.objects.get(pk=mine.pk).chain_pem == leaf.pem


def test_bundle_files_are_not_readable_by_others(db, stack_a, owner, pki):
    route_for(stack_a)
    leaf = pki["leaf"]
    certificates.upload_certificate(
        actor=owner, hostname=HOST, chain_pem=leaf.pem, key_pem=leaf.key_pem
    )
    path = Path(certificates.certificate_files()[HOST])
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert os.access(path, os.R_OK)
