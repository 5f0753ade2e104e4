"""Certificates for the frontier's HTTPS listener, and ACME HTTP-01 challenges.

The frontier's renderer asks this module for two things only:
`certificate_files()` (host name -> PEM file with certificate chain and key, written
under BERTH_FRONTIER_DIR/certs) and `acme_challenges()` (token -> key authorisation,
answered by the frontier at /.well-known/acme-challenge/<token>).

The rest is the certificates' service layer. A route's `tls` says what its host name
wants: `self-signed` (generated here, for development), `uploaded` (the tenant uploads
chain and key; checked before it is kept) or `acme` (ordered from the CA at
BERTH_ACME_DIRECTORY by a worker, renewed BERTH_ACME_RENEW_DAYS before it expires).
Only the tenant holding a host name's HostnameClaim may put a certificate on it, and the
frontier serves a certificate only while its tenant holds the claim.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments.models import HostnameClaim, Route
from apps.deployments.routes import claim_hostname, claim_in_use, clean_hostname
from apps.deployments.signals import frontier_changed
from apps.tenants.models import Tenant
from apps.traffic import acme
from apps.traffic.models import AcmeChallenge, Certificate

log = logging.getLogger(__name__)

CERTS_DIR = "certs"
# A file stays this long after it was last listed: a frontier whose reload failed goes
# back to the previous configuration, and HAProxy reads certificate files at each reload.
STALE_FILE_SECONDS = 3600
SELF_SIGNED_DAYS = 90
MAX_CHAIN_BYTES = 64 * 1024
MAX_KEY_BYTES = 16 * 1024
MAX_CHAIN_CERTIFICATES = 8
MIN_RSA_BITS = 2048
# When several routes of a host name ask for different kinds, the strongest wins.
STRENGTH = {"self-signed": 1, "uploaded": 2, "acme": 3}


# --- what the frontier reads -------------------------------------------------------------------


def certificate_files() -> dict[str, str]:
    """Host name -> path of its PEM bundle (chain, then key; mode 0600) for HAProxy.

    Only certificates that are in date and whose tenant holds the host name's claim are
    served. A file is named after the stored chain and encrypted key, so a renewed
    certificate is a new path and the frontier's configuration changes with it (HAProxy
    loads certificates at reload), and a file already written needs no decryption.
    """
    directory = Path(settings.BERTH_FRONTIER_DIR) / CERTS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    claims = dict(HostnameClaim.objects.values_list("hostname", "tenant_id"))
    files: dict[str, str] = {}
    rows = serving().only("hostname", "tenant_id", "chain_pem", "key_encrypted")
    for certificate in rows.order_by("hostname"):
        if claims.get(certificate.hostname) != certificate.tenant_id:
            continue
        stored = f"{certificate.chain_pem}\0{certificate.key_encrypted}".encode()
        path = directory / f"{certificate.hostname}.{hashlib.sha256(stored).hexdigest()[:16]}.pem"
        if path.exists():
            os.utime(path)  # listed now: `_remove_stale` counts from the last listing
        elif not _write_bundle(path, certificate):
            continue
        files[certificate.hostname] = str(path)
    _remove_stale(directory, set(files.values()))
    return files


def _write_bundle(path: Path, certificate: Certificate) -> bool:
    try:
        key_pem = certificate.key_pem
    except InvalidToken:
        log.warning("certificate %s: key cannot be decrypted (SECRET_KEY changed?)", certificate)
        return False
    _write_private(path, certificate.chain_pem.strip() + "\n" + key_pem.strip() + "\n")
    return True


def acme_challenges() -> dict[str, str]:
    """ACME HTTP-01 tokens waiting to be answered -> their key authorisations."""
    return dict(AcmeChallenge.objects.values_list("token", "key_authorization"))


def serving() -> Any:
    """Certificates the frontier can present: a chain, a key, and in date."""
    return (
        Certificate.objects.exclude(chain_pem="")
        .exclude(key_encrypted="")
        .filter(not_after__gt=timezone.now())
    )


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by Berth's user only, in one step (never half a key)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _remove_stale(directory: Path, keep: set[str]) -> None:
    horizon = time.time() - STALE_FILE_SECONDS
    for path in directory.glob("*.pem"):
        if str(path) not in keep and path.stat().st_mtime < horizon:
            path.unlink(missing_ok=True)


def _changed(reason: str) -> None:
    """Tell the frontier (it renders certificate_files() and acme_challenges() again)."""
    frontier_changed.send(sender=Certificate, stack_id=None, reason=reason)


# --- PEM: generate, parse, check ---------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A checked certificate chain (server certificate first) and its key, as PEM."""

    chain_pem: str
    key_pem: str
    not_after: datetime.datetime


def _key_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def generate_self_signed(hostname: str, days: int = SELF_SIGNED_DAYS) -> Bundle:
    """A certificate for `hostname` signed by its own key: HTTPS for development, which
    browsers warn about."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Bundle(
        chain_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=_key_pem(key),
        not_after=certificate.not_valid_after_utc,
    )


def parse_bundle(hostname: str, chain_pem: Any, key_pem: Any) -> Bundle:
    """Check an uploaded chain and key; a ValidationError names the field and the reason.

    Refused: what is not PEM, an encrypted or weak key, a key that is not the server
    certificate's, a certificate out of date or not naming `hostname`, a chain whose
    certificates are not each issued by the next one.
    """
    problems: dict[str, list[str]] = {}  # the chain's and the key's at once
    chain = key = None
    try:
        chain = _load_chain(chain_pem)
    except ValidationError as exc:
        problems.update(exc.message_dict)
    try:
        key = _load_key(key_pem)
    except ValidationError as exc:
        problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    leaf = chain[0]
    try:
        _check_key_matches(chain, key)
        _check_dates(leaf)
        if hostname:  # "" when the host name itself was refused: said already
            _check_covers(leaf, hostname)
        _check_order(chain)
    except (ValueError, UnsupportedAlgorithm) as exc:
        # PEM that loads can still hold fields cryptography reads only on use (a bad
        # SAN extension, an unknown curve): the upload's fault, not a server error.
        raise ValidationError({"chain": [f"Unreadable certificate: {exc}"]}) from exc
    return Bundle(
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        key_pem=_key_pem(key),
        not_after=leaf.not_valid_after_utc,
    )


def _text(value: Any, field: str, limit: int, what: str) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({field: [f"Paste the {what} (PEM)."]})
    if len(value) > limit:
        raise ValidationError({field: [f"The {what} may have at most {limit // 1024} KiB."]})
    return value.strip().encode()


def _load_chain(value: Any) -> list[x509.Certificate]:
    data = _text(value, "chain", MAX_CHAIN_BYTES, "certificate chain")
    if b"PRIVATE KEY" in data:
        raise ValidationError({"chain": ["Put the private key in the key field, not here."]})
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValidationError(
            {"chain": [f"Not a PEM certificate chain (BEGIN CERTIFICATE blocks): {exc}"]}
        ) from exc
    if len(chain) > MAX_CHAIN_CERTIFICATES:
        raise ValidationError(
            {"chain": [f"A chain of at most {MAX_CHAIN_CERTIFICATES} certificates, please."]}
        )
    return chain


def _load_key(value: Any) -> Any:
    data = _text(value, "key", MAX_KEY_BYTES, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ValidationError(
            {"key": ["The key is protected by a passphrase: upload it without one."]}
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationError({"key": [f"Not a PEM private key: {exc}"]}) from exc
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise ValidationError(
        {"key": [f"Use an RSA key of {MIN_RSA_BITS} bits or more, or an ECDSA key."]}
    )


def _public(value: Any) -> bytes:
    return value.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "no subject"


def _check_key_matches(chain: list[x509.Certificate], key: Any) -> None:
    mine = _public(key)
    if _public(chain[0]) == mine:
        return
    for position, certificate in enumerate(chain[1:], start=2):
        if _public(certificate) == mine:
            raise ValidationError(
                {
                    "chain": [
                        f"The key belongs to certificate {position} ({_subject(certificate)}): "
                        "put the server's certificate first, then its issuers."
                    ]
                }
            )
    raise ValidationError(
        {"key": [f"This key does not belong to the certificate ({_subject(chain[0])})."]}
    )


def _check_dates(leaf: x509.Certificate) -> None:
    now = timezone.now()
    if leaf.not_valid_after_utc <= now:
        raise ValidationError(
            {
                "chain": [
                    f"The certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC."
                ]
            }
        )
    if leaf.not_valid_before_utc > now:
        raise ValidationError(
            {
                "chain": [
                    "The certificate is not valid before "
                    f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
                ]
            }
        )


def _check_covers(leaf: x509.Certificate, hostname: str) -> None:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ValidationError(
            {"chain": ["The certificate names no host (no subjectAltName); browsers refuse it."]}
        ) from exc
    dns_names = [name.lower().rstrip(".") for name in names.get_values_for_type(x509.DNSName)]
    if not any(name_matches(pattern, hostname) for pattern in dns_names):
        listed = ", ".join(dns_names) or "no DNS names"
        raise ValidationError(
            {"hostname": [f"The certificate is for {listed}, not for {hostname}."]}
        )


def name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125: `*.example.com` covers `a.example.com`, neither `example.com` nor
    `a.b.example.com`; anything else must be equal."""
    if pattern.startswith("*."):
        head, dot, rest = hostname.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:] and "." in rest
    return pattern == hostname


def _check_order(chain: list[x509.Certificate]) -> None:
    for position in range(1, len(chain)):
        child, issuer = chain[position - 1], chain[position]
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ValidationError(
                {
                    "chain": [
                        f"Certificate {position + 1} ({_subject(issuer)}) did not issue "
                        f"certificate {position} ({_subject(child)}): list the server's "
                        "certificate first, then each issuer in order."
                    ]
                }
            ) from exc


# --- uploads and deletion (the API calls these) ------------------------------------------------


def upload_certificate(
    *,
    actor: Any,
    hostname: Any,
    chain_pem: Any,
    key_pem: Any,
    tenant_slug: str = "",
    token: Any = None,
) -> Certificate:
    """Keep an uploaded certificate for `hostname`, replacing the one it has.

    The host name's tenant decides: a name claimed by a tenant's route takes that
    tenant's certificate only; a free name is claimed for the caller's tenant (given by
    slug when the caller has several) so that a route can then use the certificate.
    """
    hostname, bundle = check_upload(hostname, chain_pem, key_pem)
    with transaction.atomic():
        tenant = _owner_for_upload(actor, hostname, tenant_slug, token)
        claim_hostname(tenant, hostname)
        certificate = _replace(tenant, hostname, Certificate.Kind.UPLOADED, bundle)
    record_event(
        "traffic.certificate.upload",
        actor=actor,
        tenant=tenant,
        obj=certificate,
        data={"not_after": bundle.not_after.isoformat()},
    )
    _changed("certificate uploaded")
    return certificate


def check_upload(hostname: Any, chain_pem: Any, key_pem: Any) -> tuple[str, Bundle]:
    """The clean host name and the parsed bundle, or one ValidationError with the host
    name's, the chain's and the key's problems at once. Writes nothing: the upload form
    runs it also when its own checks failed (a file too big), so one submit says all."""
    problems: dict[str, list[str]] = {}
    try:
        hostname = clean_hostname(hostname)
    except ValidationError as exc:
        problems.update(exc.message_dict)  # clean_hostname's errors are keyed "hostname"
        hostname = ""
    try:
        bundle = parse_bundle(hostname, chain_pem, key_pem)
    except ValidationError as exc:
        problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    return hostname, bundle


def delete_certificate(*, actor: Any, certificate: Certificate) -> None:
    """Remove a certificate; a route that asks for a generated or ACME one gets a new
    one at the next maintenance pass."""
    require_role(actor, certificate.tenant, Role.MEMBER)
    tenant, hostname = certificate.tenant, certificate.hostname
    certificate.delete()
    record_event(
        "traffic.certificate.delete", actor=actor, tenant=tenant, data={"hostname": hostname}
    )
    _changed("certificate deleted")


def _owner_for_upload(actor: Any, hostname: str, tenant_slug: str, token: Any) -> Tenant:
    writable = Tenant.objects.visible_to(actor, Role.MEMBER, token=token)
    claim = HostnameClaim.objects.select_for_update().filter(hostname=hostname).first()
    if claim is not None and claim_in_use(claim):
        if tenant_slug and tenant_slug != claim.tenant.slug:
            raise ValidationError({"hostname": [f"{hostname} is taken by another tenant."]})
        if writable.filter(pk=claim.tenant_id).exists():
            return claim.tenant
        if Tenant.objects.visible_to(actor, token=token).filter(pk=claim.tenant_id).exists():
            raise PermissionDenied(f"This needs the member role in {claim.tenant.slug}.")
        raise ValidationError({"hostname": [f"{hostname} is taken by another tenant."]})
    if tenant_slug:
        found = writable.filter(slug=tenant_slug).first()
        if found is None:
            raise ValidationError({"tenant": [f"You are not a member of a tenant {tenant_slug}."]})
        return found
    if token is not None and getattr(token, "tenant_id", None):
        found = writable.filter(pk=token.tenant_id).first()
        if found is not None:
            return found
    choices = list(writable.order_by("slug")[:2])
    if len(choices) != 1:
        raise ValidationError({"tenant": ["Name the tenant (its slug) the host name is for."]})
    return choices[0]


def _replace(tenant: Tenant, hostname: str, kind: str, bundle: Bundle) -> Certificate:
    """Store `bundle` as the host name's certificate (a former holder's row goes)."""
    Certificate.objects.filter(hostname=hostname).exclude(tenant=tenant).delete()
    certificate = Certificate.objects.select_for_update().filter(
        hostname=hostname
    ).first() or Certificate(tenant=tenant, hostname=hostname)
    certificate.kind = kind
    certificate.chain_pem = bundle.chain_pem
    certificate.set_key(bundle.key_pem)
    certificate.not_after = bundle.not_after
    certificate.state = Certificate.State.VALID
    certificate.error = ""
    certificate.save()
    return certificate


# --- what the routes ask for -------------------------------------------------------------------


def wanted(stack_id: int | None = None) -> dict[str, tuple[int, str]]:
    """Host name -> (tenant id, kind of certificate its routes ask for), for the routes
    whose tenant holds the host name (of one stack's host names, or all)."""
    routes = Route.objects.exclude(tls=Route.Tls.NONE)
    if stack_id is not None:
        routes = routes.filter(
            hostname__in=Route.objects.filter(stack_id=stack_id).values("hostname")
        )
    claims = dict(
        HostnameClaim.objects.filter(hostname__in=routes.values("hostname")).values_list(
            "hostname", "tenant_id"
        )
    )
    found: dict[str, tuple[int, str]] = {}
    for hostname, tenant_id, tls in routes.values_list("hostname", "tenant_id", "tls"):
        if claims.get(hostname) != tenant_id:
            continue
        current = found.get(hostname)
        if current is None or STRENGTH[tls] > STRENGTH[current[1]]:
            found[hostname] = (tenant_id, tls)
    return found


def _next_step(kind: str, certificate: Certificate | None, tenant_id: int) -> str:
    """What a host name whose routes want `kind` needs: "generate", "order" or ""."""
    if certificate is not None and certificate.tenant_id != tenant_id:
        certificate = None  # a former holder's: replaced
    if kind == Route.Tls.SELF_SIGNED:
        usable = certificate is not None and _in_date(certificate)
        return "" if usable else "generate"
    if kind == Route.Tls.ACME:
        return (
            "" if certificate is not None and certificate.kind == Certificate.Kind.ACME else "order"
        )
    return ""


def _in_date(certificate: Certificate) -> bool:
    if not (certificate.chain_pem and certificate.key_encrypted and certificate.not_after):
        return False
    return certificate.not_after > timezone.now()


def needs_certificates(stack_id: int | None = None) -> bool:
    """Whether some host name (of this stack) asks for a certificate it does not have
    yet: three small queries, cheap enough to ask at every frontier change."""
    want = wanted(stack_id)
    have = {c.hostname: c for c in Certificate.objects.filter(hostname__in=list(want))}
    return any(
        _next_step(kind, have.get(hostname), tenant_id)
        for hostname, (tenant_id, kind) in want.items()
    )


def ensure_certificates(stack_id: int | None = None) -> list[int]:
    """Give every routed host name the certificate its routes ask for: self-signed ones
    are generated now; ACME ones become pending rows whose ids are returned, to be
    ordered by a worker (`issue_acme`). The current certificate serves meanwhile."""
    to_order: list[int] = []
    generated = False
    for hostname, (tenant_id, kind) in wanted(stack_id).items():
        with transaction.atomic():
            current = Certificate.objects.select_for_update().filter(hostname=hostname).first()
            step = _next_step(kind, current, tenant_id)
            if step == "generate":
                tenant = Tenant.objects.get(pk=tenant_id)
                bundle = generate_self_signed(hostname)
                _replace(tenant, hostname, Certificate.Kind.SELF_SIGNED, bundle)
                generated = True
            elif step == "order":
                certificate = _pending_order(tenant_id, hostname, current)
                if certificate.state == Certificate.State.PENDING:
                    to_order.append(certificate.pk)
    if generated:
        _changed("certificate generated")
    return to_order


def _pending_order(tenant_id: int, hostname: str, current: Certificate | None) -> Certificate:
    if current is not None and current.tenant_id != tenant_id:
        current.delete()
        current = None
    certificate = current or Certificate(tenant_id=tenant_id, hostname=hostname)
    certificate.kind = Certificate.Kind.ACME
    certificate.state = Certificate.State.PENDING
    certificate.error = ""
    if not acme.enabled():  # said at once, rather than by a worker that cannot order
        certificate.state = Certificate.State.FAILED
        certificate.error = acme.disabled_message()
    certificate.save()
    return certificate


# --- ACME orders and renewal -------------------------------------------------------------------


def issue_acme(certificate_id: int) -> Certificate | None:
    """Order the certificate from the CA; a failure is kept on the row (state failed,
    `error` with the CA's reason) and the certificate it had keeps serving.

    A lease (`issuing_since`) makes a second worker given the same id return None.
    """
    if not _take_lease(certificate_id):
        return None
    certificate = Certificate.objects.select_related("tenant").get(pk=certificate_id)
    try:
        issued = acme.issue(
            certificate.hostname,
            publish=lambda token, authorization: _publish(certificate, token, authorization),
            withdraw=_withdraw,
        )
        leaf = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
    except (acme.AcmeError, ValueError) as exc:
        return _order_failed(certificate, str(exc))
    except Exception as exc:  # a bug, not the CA: logged, and the row says so
        log.exception("ACME order for %s failed", certificate.hostname)
        return _order_failed(certificate, f"Unexpected error ({exc.__class__.__name__}): {exc}")
    certificate.chain_pem = issued.chain_pem
    certificate.set_key(issued.key_pem)
    certificate.not_after = leaf.not_valid_after_utc
    certificate.state = Certificate.State.VALID
    certificate.error = ""
    certificate.issuing_since = None
    certificate.save()
    record_event(
        "traffic.certificate.issue",
        tenant=certificate.tenant,
        obj=certificate,
        data={"not_after": certificate.not_after.isoformat()},
    )
    _changed("certificate issued")
    return certificate


def _take_lease(certificate_id: int) -> bool:
    now = timezone.now()
    expired = now - datetime.timedelta(seconds=settings.BERTH_ACME_TIMEOUT + 180)
    free = Q(issuing_since__isnull=True) | Q(issuing_since__lt=expired)
    taken = (
        Certificate.objects.filter(pk=certificate_id, kind=Certificate.Kind.ACME)
        .filter(free)
        .update(issuing_since=now)
    )
    return taken == 1


def _order_failed(certificate: Certificate, reason: str) -> Certificate:
    certificate.state = Certificate.State.FAILED
    certificate.error = reason
    certificate.issuing_since = None
    certificate.save(update_fields=["state", "error", "issuing_since", "updated_at"])
    record_event(
        "traffic.certificate.issue",
        tenant=certificate.tenant,
        obj=certificate,
        outcome=Event.Outcome.FAILURE,
        message=reason[:500],
    )
    return certificate


def _publish(certificate: Certificate, token: str, key_authorization: str) -> None:
    AcmeChallenge.objects.update_or_create(
        token=token,
        defaults={"certificate": certificate, "key_authorization": key_authorization},
    )
    _changed("acme challenge")


def _withdraw(tokens: list[str]) -> None:
    AcmeChallenge.objects.filter(token__in=tokens).delete()
    _changed("acme challenge done")


def maintain() -> list[int]:
    """The periodic pass: certificates routes ask for are created, expired ones marked,
    self-signed ones near their end regenerated; returns the ids of ACME certificates to
    order (new, due for renewal, or failed long enough ago to try again)."""
    to_order = ensure_certificates()
    now = timezone.now()
    # Pending and failed rows keep their state: it says what happens to them, or why not.
    Certificate.objects.filter(not_after__lte=now, state=Certificate.State.VALID).update(
        state=Certificate.State.EXPIRED
    )
    renew_before = now + datetime.timedelta(days=settings.BERTH_ACME_RENEW_DAYS)
    want = wanted()
    _regenerate_self_signed(want, renew_before)
    retry_before = now - datetime.timedelta(seconds=settings.BERTH_ACME_RETRY_SECONDS)
    due = Certificate.objects.filter(
        kind=Certificate.Kind.ACME, hostname__in=[h for h, w in want.items() if w[1] == "acme"]
    ).filter(
        Q(state=Certificate.State.PENDING)
        | Q(state=Certificate.State.FAILED, updated_at__lt=retry_before)
        | Q(state__in=(Certificate.State.VALID, Certificate.State.EXPIRED))
        & (Q(not_after__isnull=True) | Q(not_after__lt=renew_before))
    )
    return sorted(set(to_order) | set(due.values_list("pk", flat=True)))


def _regenerate_self_signed(want: dict[str, tuple[int, str]], before: datetime.datetime) -> None:
    hostnames = [h for h, (_, kind) in want.items() if kind == Route.Tls.SELF_SIGNED]
    old = Certificate.objects.filter(
        kind=Certificate.Kind.SELF_SIGNED, hostname__in=hostnames, not_after__lt=before
    ).select_related("tenant")
    renewed = False
    for certificate in old:
        with transaction.atomic():
            _replace(
                certificate.tenant,
                certificate.hostname,
                Certificate.Kind.SELF_SIGNED,
                generate_self_signed(certificate.hostname),
            )
            renewed = True
    if renewed:
        _changed("certificate generated")


def acme_problem() -> str:
    """Why a route cannot get an ACME certificate here ('' when it can)."""
    return "" if acme.enabled() else acme.disabled_message()
