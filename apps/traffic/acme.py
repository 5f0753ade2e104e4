"""ACME (RFC 8555): order a certificate for one host name, proving control over HTTP-01.

The protocol is certbot's `acme` library; this module adds Berth's account (one per
directory, key kept encrypted in AcmeAccount) and turns every failure of the CA, the
network or the challenge into one `AcmeError` whose message says what went wrong, so
the caller records it on the certificate instead of crashing a worker.

The challenge itself is answered by the frontier: `issue` hands each token and key
authorisation to `publish` before telling the CA to validate, and to `withdraw` after.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass

import josepy
import requests
from acme import challenges, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import IntegrityError

from apps.traffic.models import AcmeAccount, decrypt_secret, encrypt_secret

# Tokens go into the frontier's map file and URL: base64url only (RFC 8555 section 8.3).
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
USER_AGENT = "berth-acme"


class AcmeError(Exception):
    """An order that did not give a certificate; the message is shown to the user."""


@dataclass(frozen=True)
class Issued:
    chain_pem: str
    key_pem: str


Publish = Callable[[str, str], None]
Withdraw = Callable[[list[str]], None]


def enabled() -> bool:
    return bool(settings.BERTH_ACME_DIRECTORY)


def issue(hostname: str, *, publish: Publish, withdraw: Withdraw) -> Issued:
    """A certificate for `hostname` from the CA at BERTH_ACME_DIRECTORY, with a fresh key.

    Raises AcmeError with the CA's reason (an unanswered challenge, a refused name, a
    CA that cannot be reached) when there is none.
    """
    if not enabled():
        raise AcmeError(disabled_message())
    key_pem, csr_pem = _key_and_csr(hostname)
    tokens: list[str] = []
    try:
        client = _client()
        order = client.new_order(csr_pem)
        for authorization in order.authorizations:
            tokens += _answer(client, authorization, publish)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=settings.BERTH_ACME_TIMEOUT)
        order = client.poll_and_finalize(order, deadline)
    except errors.ValidationError as exc:
        raise AcmeError(_validation_reason(hostname, exc)) from exc
    except errors.TimeoutError as exc:
        raise AcmeError(
            f"The CA did not finish the order within {settings.BERTH_ACME_TIMEOUT} s."
        ) from exc
    except messages.Error as exc:
        raise AcmeError(f"The CA refused: {_problem(exc)}") from exc
    except requests.exceptions.SSLError as exc:
        raise AcmeError(
            f"Cannot verify the CA's HTTPS certificate ({exc.__class__.__name__}); "
            "set BERTH_ACME_CA_BUNDLE to the file of the CA that signed it."
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        raise AcmeError(f"Cannot reach the CA at {settings.BERTH_ACME_DIRECTORY}: {exc}") from exc
    except (
        requests.exceptions.RequestException,
        errors.Error,
        josepy.errors.Error,
        ValueError,
    ) as exc:
        raise AcmeError(f"ACME failed: {exc}") from exc
    finally:
        if tokens:
            withdraw(tokens)
    return Issued(chain_pem=order.fullchain_pem, key_pem=key_pem)


def disabled_message() -> str:
    return (
        "ACME is off on this Berth: the administrator sets BERTH_ACME_DIRECTORY (the CA's "
        "directory URL) to issue certificates automatically. Upload a certificate instead."
    )


def _answer(client: ClientV2, authorization: messages.AuthorizationResource, publish: Publish):
    """Publish and answer the HTTP-01 challenge of one authorisation; [] when the CA
    already holds a valid one for this account (reuse)."""
    if authorization.body.status == messages.STATUS_VALID:
        return []
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            response, validation = challenge.response_and_validation(client.net.key)
            token = challenge.chall.encode("token")
            if not TOKEN_PATTERN.match(token):
                raise AcmeError("The CA sent a challenge token Berth cannot serve.")
            publish(token, validation)
            client.answer_challenge(challenge, response)
            return [token]
    name = authorization.body.identifier.value
    raise AcmeError(f"The CA offers no HTTP-01 challenge for {name}.")


def _client() -> ClientV2:
    """A client logged in to Berth's account at the directory (created on first use)."""
    directory_url = settings.BERTH_ACME_DIRECTORY
    account = _account(directory_url)
    key = serialization.load_pem_private_key(decrypt_secret(account.key_encrypted).encode(), None)
    net = ClientNetwork(
        josepy.JWKEC(key=key),
        alg=josepy.ES256,
        verify_ssl=settings.BERTH_ACME_CA_BUNDLE or True,
        user_agent=USER_AGENT,
        timeout=30,
    )
    client = ClientV2(ClientV2.get_directory(directory_url, net), net)
    contact = (f"mailto:{account.email}",) if account.email else ()
    registration = messages.NewRegistration(contact=contact, terms_of_service_agreed=True)
    try:
        # Registering again with the same key returns the existing account (RFC 8555
        # 7.3.1): one request, and a CA that forgot the account (pebble restarted) is fine.
        regr = client.new_account(registration)
    except errors.ConflictError as exc:
        regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        net.account = regr
    if regr.uri != account.uri:
        AcmeAccount.objects.filter(pk=account.pk).update(uri=regr.uri)
    return client


def _account(directory_url: str) -> AcmeAccount:
    found = AcmeAccount.objects.filter(directory=directory_url).first()
    if found is not None:
        return found
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    try:
        return AcmeAccount.objects.create(
            directory=directory_url,
            email=settings.BERTH_ACME_EMAIL,
            key_encrypted=encrypt_secret(pem),
        )
    except IntegrityError:  # another worker created it meanwhile
        return AcmeAccount.objects.get(directory=directory_url)


def _key_and_csr(hostname: str) -> tuple[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def _problem(error: messages.Error) -> str:
    return error.detail or error.description or error.typ or str(error)


def _validation_reason(hostname: str, exc: errors.ValidationError) -> str:
    """The CA's words on why the challenge failed (for example: connection refused on
    port 80, or a 404 for the token)."""
    reasons = [
        _problem(challenge.error)
        for authorization in exc.failed_authzrs
        for challenge in authorization.body.challenges
        if challenge.error is not None
    ]
    detail = "; ".join(reasons) or "no reason given"
    return f"The CA could not validate {hostname} over HTTP-01: {detail}"
