"""ACME against Debian's pebble on loopback: issuance, failure, renewal.

End to end, the HTTP-01 challenge is answered by the real frontier (HAProxy, from
acme_challenges()) and the issued certificate is then what the frontier's HTTPS
listener presents. One unit step checks the client alone, with a bare responder fed
the same way the frontier is (on `frontier_changed`).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import current_app
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apps.deployments import routes as route_services
from apps.deployments.models import HostnameClaim, Route
from apps.deployments.signals import frontier_changed
from apps.traffic import certificates, tasks
from apps.traffic.models import AcmeChallenge, Certificate
from tests.fixtures.pebble import free_port

HOST = "shop.acme.test"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def leaf_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


def public_bytes(holder) -> bytes:
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_chain(chain_pem: str, root_pem: str) -> None:
    """Each certificate of the chain is issued by the next, the last by pebble's root."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    for child, issuer in zip(chain, [*chain[1:], root], strict=True):
        child.verify_directly_issued_by(issuer)


@pytest.fixture
def stack_a(tenant_a, owner):
    from apps.deployments import services as stack_services

    environment = tenant_a.environments.order_by("pk").first()
    return stack_services.create_stack(
        owner, environment, "shop", compose="services:\n  web:\n    image: nginx:1\n"
    )


def acme_route(stack, hostname: str = HOST) -> Route:
    HostnameClaim.objects.create(hostname=hostname, tenant=stack.tenant)
    return Route.objects.create(
        tenant=stack.tenant,
        stack=stack,
        service=stack.services.get(name="web"),
        hostname=hostname,
        port=80,
        tls="acme",
    )


# --- the client alone (unit step: a bare HTTP-01 responder) -----------------------------------


class Responder:
    """Answers /.well-known/acme-challenge/<token> from a copy of acme_challenges()
    taken on every `frontier_changed`, as the frontier does."""

    def __init__(self, port: int):
        self.answers: dict[str, str] = {}
        self.asked: list[str] = []
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                token = self.path.removeprefix(CHALLENGE_PREFIX)
                responder.asked.append(self.headers.get("Host", ""))
                answer = responder.answers.get(token) if self.path != token else None
                body = (answer or "not found").encode()
                self.send_response(200 if answer else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def refresh(self, sender, **kwargs) -> None:
        self.answers = certificates.acme_challenges()


@pytest.fixture
def responder() -> Iterator[Responder]:
    server = Responder(free_port())
    server.thread.start()
    frontier_changed.connect(server.refresh, dispatch_uid="test-acme-responder")
    yield server
    frontier_changed.disconnect(dispatch_uid="test-acme-responder")
    server.server.shutdown()
    server.server.server_close()


def test_the_client_gets_a_certificate_from_pebble(
    db, stack_a, responder, pebble_for, acme_settings
):
    pebble = pebble_for(responder.server.server_address[1])
    acme_settings(pebble)
    acme_route(stack_a)

    [certificate_id] = certificates.ensure_certificates()
    certificate = certificates.issue_acme(certificate_id)

    assert (certificate.kind, certificate.state, certificate.error) == ("acme", "valid", "")
    leaf = leaf_of(certificate.chain_pem)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOST]
    assert certificate.not_after == leaf.not_valid_after_utc
    key = serialization.load_pem_private_key(certificate.key_pem.encode(), None)
    assert public_bytes(leaf) == public_bytes(key)
    verify_chain(certificate.chain_pem, pebble.root_pem())
    assert any(host.startswith(HOST) for host in responder.asked)  # pebble really asked
    assert not AcmeChallenge.objects.exists()  # withdrawn once answered
    assert responder.answers == {}


def test_an_unanswered_challenge_fails_with_the_reason_and_the_old_certificate_stays(
    db, stack_a, pebble_for, acme_settings
):
    closed_port = free_port()  # nothing listens there: pebble's connection is refused
    acme_settings(pebble_for(closed_port))
    acme_route(stack_a)
    old = certificates.generate_self_signed(HOST)
    row = Certificate(
        tenant=stack_a.tenant,
        hostname=HOST,
        kind="self-signed",
        chain_pem=old.chain_pem,
        not_after=old.not_after,
        state="valid",
    )
    row.set_key(old.key_pem)
    row.save()

    [certificate_id] = certificates.ensure_certificates()
    certificate = certificates.issue_acme(certificate_id)

    assert certificate.state == "failed"
    assert f"could not validate {HOST} over HTTP-01" in certificate.error
    assert "refused" in certificate.error.lower(), certificate.error
    assert certificate.issuing_since is None
    assert not AcmeChallenge.objects.exists()
    assert certificate.chain_pem == old.chain_pem  # still served until it expires
    assert HOST in certificates.certificate_files()
    assert stack_a.tenant.events.filter(
        action="traffic.certificate.issue", outcome="failure"
    ).exists()


def test_a_challenge_answered_with_a_404_fails_with_the_ca_reason(
    db, stack_a, responder, pebble_for, acme_settings
):
    frontier_changed.disconnect(dispatch_uid="test-acme-responder")  # never told the tokens
    acme_settings(pebble_for(responder.server.server_address[1]))
    acme_route(stack_a)
    [certificate_id] = certificates.ensure_certificates()
    certificate = certificates.issue_acme(certificate_id)
    assert certificate.state == "failed"
    assert "404" in certificate.error, certificate.error
    assert responder.asked  # pebble did come and ask
    assert certificate.chain_pem == ""
    assert HOST not in certificates.certificate_files()


def test_a_certificate_near_its_end_is_renewed_with_a_new_key(
    db, stack_a, responder, pebble_for, acme_settings
):
    # pebble issues for 10 days, fewer than BERTH_ACME_RENEW_DAYS (30): due at once
    acme_settings(pebble_for(responder.server.server_address[1], validity_seconds=10 * 86400))
    acme_route(stack_a)
    [certificate_id] = certificates.ensure_certificates()
    first = certificates.issue_acme(certificate_id)
    assert first.state == "valid", first.error
    assert certificates.maintain() == [certificate_id]

    renewed = certificates.issue_acme(certificate_id)

    assert renewed.state == "valid", renewed.error
    assert leaf_of(renewed.chain_pem).serial_number != leaf_of(first.chain_pem).serial_number
    assert renewed.key_pem != first.key_pem
    assert renewed.not_after >= first.not_after


def test_a_ca_that_cannot_be_reached_fails_the_order_without_a_crash(
    db, stack_a, acme_settings, pebble_for, settings
):
    acme_settings(pebble_for(free_port()))
    settings.BERTH_ACME_DIRECTORY = f"https://127.0.0.1:{free_port()}/dir"
    acme_route(stack_a)
    [certificate_id] = certificates.ensure_certificates()
    certificate = certificates.issue_acme(certificate_id)
    assert certificate.state == "failed"
    assert certificate.error.startswith(f"Cannot reach the CA at {settings.BERTH_ACME_DIRECTORY}")


def test_a_directory_with_an_untrusted_certificate_says_which_setting_fixes_it(
    db, stack_a, acme_settings, pebble_for, settings
):
    acme_settings(pebble_for(free_port()))
    settings.BERTH_ACME_CA_BUNDLE = ""
    acme_route(stack_a)
    [certificate_id] = certificates.ensure_certificates()
    certificate = certificates.issue_acme(certificate_id)
    assert certificate.state == "failed"
    assert "BERTH_ACME_CA_BUNDLE" in certificate.error


def test_a_second_worker_with_the_same_order_does_nothing(db, stack_a, acme_settings, pebble_for):
    acme_settings(pebble_for(free_port()))
    acme_route(stack_a)
    [certificate_id] = certificates.ensure_certificates()
    assert certificates._take_lease(certificate_id)
    assert certificates.issue_acme(certificate_id) is None
    assert Certificate.objects.get(pk=certificate_id).state == "pending"


# --- end to end through the frontier -----------------------------------------------------------


def served_certificate(frontier, hostname: str, root_pem: str) -> tuple[x509.Certificate, str]:
    """Connect to the frontier's HTTPS listener with SNI `hostname`, trusting only
    pebble's root: the certificate presented, and the body of GET /."""
    context = ssl.create_default_context(cadata=root_pem)
    host, _, port = frontier.tls_addr.rpartition(":")
    raw = socket.create_connection((host, int(port)), timeout=10)
    with context.wrap_socket(raw, server_hostname=hostname) as tls:
        der = tls.getpeercert(binary_form=True)
        request = f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        body = response.read().decode(errors="replace")
        assert response.status == 200, body
    return x509.load_der_x509_certificate(der), body


@pytest.fixture
def eager_tasks():
    previous = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = previous


@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_an_acme_route_is_served_over_https_and_renewed_through_the_frontier(
    frontier, routed_web, owner, pebble_for, acme_settings, eager_tasks, settings
):
    # Certificates valid 10 days, fewer than BERTH_ACME_RENEW_DAYS (30): due at once.
    pebble = pebble_for(frontier.port, validity_seconds=10 * 86400)
    acme_settings(pebble)
    web = routed_web("plain.acme.test")
    web.add_container("1.0")

    # The route service commits, sends frontier_changed; the receiver queues the order
    # (tasks run eagerly here), the frontier answers the challenge, pebble validates.
    route_services.create_route(
        owner, web.service, hostname=HOST, port=8080, tls="acme", redirect_https=True
    )

    first = Certificate.objects.get(hostname=HOST)
    assert (first.kind, first.state) == ("acme", "valid"), first.error
    root = pebble.root_pem()
    verify_chain(first.chain_pem, root)
    presented, body = served_certificate(frontier, HOST, root)
    assert presented == leaf_of(first.chain_pem)
    assert "web 1.0" in body
    assert frontier.get(HOST)[0] == 302  # redirect_https, now that there is a certificate
    assert not AcmeChallenge.objects.exists()

    assert tasks.maintain_certificates.apply().get() == 1  # due for renewal: renewed

    renewed = Certificate.objects.get(hostname=HOST)
    assert renewed.state == "valid", renewed.error
    assert leaf_of(renewed.chain_pem).serial_number != leaf_of(first.chain_pem).serial_number
    presented, _ = served_certificate(frontier, HOST, root)
    assert presented == leaf_of(renewed.chain_pem)
    settings.BERTH_ACME_RENEW_DAYS = 5
    assert certificates.maintain() == []  # no longer due
