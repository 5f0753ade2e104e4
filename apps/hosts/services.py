"""Registering, changing and watching Docker engines (Hosts).

Hosts are platform infrastructure: only platform admins (or the operator, through a
management command, with `actor=None`) change them. Every change records one Event
with no tenant; heartbeats record one only when a host's state changes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.hosts.engine import EngineError, EngineInfo, forget_tls_files, get_engine
from apps.hosts.models import Host

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$")
TLS_FIELDS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")
EDITABLE_FIELDS = ("name", "endpoint", *TLS_FIELDS, "tls_verify", "labels")
LOCAL_HOST_NAME = "local"


def _require_operator(actor: Any) -> None:
    """Only the operator (actor None: a management command) or a platform admin."""
    if actor is None:
        return
    if not (getattr(actor, "is_active", False) and getattr(actor, "is_superuser", False)):
        raise PermissionDenied("Only platform admins manage hosts.")


# --- validation -----------------------------------------------------------------------


def _endpoint_error(endpoint: str) -> str | None:
    """Why an endpoint is unusable, or None: unix:///absolute/path or tcp://host:port."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
        if not path.startswith("/") or len(path) < 2 or "\x00" in path:
            return (
                "Use unix:// followed by an absolute socket path, e.g. unix:///var/run/docker.sock."
            )
        return None
    if not endpoint.startswith("tcp://"):
        return "Use unix:///path/to/docker.sock or tcp://host:port."
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return "The port must be a number between 1 and 65535."
    if not parts.hostname or port is None or port < 1:
        return "Use tcp://host:port, e.g. tcp://10.0.0.5:2376."
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return "Use only tcp://host:port, without a path, query or user."
    return None


def _pem_error(field: str, pem: str) -> str | None:
    data = pem.strip().encode()
    try:
        if field == "tls_client_key":
            serialization.load_pem_private_key(data, password=None)
        else:
            x509.load_pem_x509_certificates(data)
    except (ValueError, TypeError):
        if field == "tls_client_key":
            return "This is not an unencrypted PEM private key."
        return "This is not a PEM certificate."
    return None


def _key_matches_cert(cert_pem: str, key_pem: str) -> bool:
    cert = x509.load_pem_x509_certificates(cert_pem.strip().encode())[0]
    key = serialization.load_pem_private_key(key_pem.strip().encode(), password=None)
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def _tls_errors(host: Host) -> dict[str, str]:
    given = [f for f in TLS_FIELDS if getattr(host, f).strip()]
    if not given:
        return {}
    if host.endpoint.startswith("unix://"):
        return {given[0]: "TLS material is only used with tcp:// endpoints."}
    missing = [f for f in TLS_FIELDS if f not in given]
    if missing:
        return {
            f: "Give the CA certificate, client certificate and client key together, or none."
            for f in missing
        }
    errors = {f: msg for f in TLS_FIELDS if (msg := _pem_error(f, getattr(host, f)))}
    if not errors and not _key_matches_cert(host.tls_client_cert, host.tls_client_key):
        errors["tls_client_key"] = "This key does not belong to the client certificate."
    return errors


def _labels_error(labels: Any) -> str | None:
    if not isinstance(labels, dict):
        return "Labels must be a mapping of names to values."
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
            return f"Label name {key!r} is not valid: use letters, digits, '.', '-', '_', '/'."
        if not isinstance(value, str) or len(value) > 255:
            return f"Label {key} needs a text value of at most 255 characters."
    return None


def _field_errors(host: Host) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not NAME_RE.match(host.name or ""):
        errors["name"] = (
            "Use 1-100 letters, digits, '.', '-' or '_', starting with a letter or digit."
        )
    elif Host.objects.filter(name=host.name).exclude(pk=host.pk).exists():
        errors["name"] = "A host with this name already exists."
    if msg := _endpoint_error(host.endpoint or ""):
        errors["endpoint"] = msg
    elif other := Host.objects.filter(endpoint=host.endpoint).exclude(pk=host.pk).first():
        errors["endpoint"] = f"Host {other.name} already uses this endpoint."
    if "endpoint" not in errors:
        errors.update(_tls_errors(host))
    if msg := _labels_error(host.labels):
        errors["labels"] = msg
    return errors


def validate_host(host: Host) -> None:
    """Raise ValidationError naming each bad field; shared by the services and the admin."""
    host.endpoint = (host.endpoint or "").strip()
    host.name = (host.name or "").strip()
    for f in TLS_FIELDS:
        setattr(host, f, (getattr(host, f) or "").strip())
    errors = _field_errors(host)
    if errors:
        raise ValidationError(errors)


# --- changes --------------------------------------------------------------------------


@transaction.atomic
def register_host(
    *,
    actor: Any,
    name: str,
    endpoint: str,
    tls_ca_cert: str = "",
    tls_client_cert: str = "",
    tls_client_key: str = "",
    tls_verify: bool = True,
    labels: dict | None = None,
) -> Host:
    """Add an engine; its state stays `pending` until the first heartbeat."""
    _require_operator(actor)
    host = Host(
        name=name,
        endpoint=endpoint,
        tls_ca_cert=tls_ca_cert,
        tls_client_cert=tls_client_cert,
        tls_client_key=tls_client_key,
        tls_verify=tls_verify,
        labels={} if labels is None else labels,
    )
    validate_host(host)
    host.save()
    record_event("host.register", actor=actor, obj=host, message=f"{host.name} at {host.endpoint}")
    return host


@transaction.atomic
def update_host(*, actor: Any, host: Host, **fields: Any) -> Host:
    """Change a host's name, endpoint, TLS material, TLS verification or labels."""
    _require_operator(actor)
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({key: "This field cannot be changed here." for key in unknown})
    host = Host.objects.select_for_update().get(pk=host.pk)
    changed = [key for key, value in fields.items() if getattr(host, key) != value]
    if not changed:
        return host
    for key, value in fields.items():
        setattr(host, key, value)
    validate_host(host)
    host.save()
    if not host.uses_tls:
        host_id = host.pk
        transaction.on_commit(lambda: forget_tls_files(host_id))
    record_event(
        "host.update", actor=actor, obj=host, message=", ".join(changed), data={"fields": changed}
    )
    return host


@transaction.atomic
def remove_host(*, actor: Any, host: Host) -> None:
    _require_operator(actor)
    host_id = host.pk
    record_event("host.remove", actor=actor, obj=host, message=f"{host.name} at {host.endpoint}")
    host.delete()
    transaction.on_commit(lambda: forget_tls_files(host_id))


@transaction.atomic
def set_draining(*, actor: Any, host: Host, draining: bool) -> Host:
    """A draining host keeps running what it runs but receives no new work."""
    _require_operator(actor)
    host = Host.objects.select_for_update().get(pk=host.pk)
    if host.draining == draining:
        return host
    host.draining = draining
    if draining and host.state == Host.State.ACTIVE:
        host.state = Host.State.DRAINING
    elif not draining and host.state == Host.State.DRAINING:
        host.state = Host.State.ACTIVE
    host.save(update_fields=["draining", "state"])
    record_event("host.drain" if draining else "host.undrain", actor=actor, obj=host)
    return host


# --- heartbeats -----------------------------------------------------------------------


def _probe(host: Host) -> EngineInfo | EngineError:
    """Ask the engine for its info; any failure comes back as the error, never raised."""
    engine = None
    try:
        engine = get_engine(host)
        return engine.info()
    except EngineError as exc:
        return exc
    except Exception as exc:  # a heartbeat must never crash the worker loop
        logger.exception("heartbeat of host %s failed unexpectedly", host.pk)
        return EngineError(f"Unexpected error: {exc}", retryable=True)
    finally:
        if engine is not None:
            engine.close()


def _transition_event(host: Host, old_state: str) -> None:
    if host.state == old_state:
        return
    if host.state == Host.State.UNREACHABLE:
        record_event(
            "host.unreachable", obj=host, outcome=Event.Outcome.FAILURE, message=host.last_error
        )
    elif old_state == Host.State.UNREACHABLE:
        record_event("host.recovered", obj=host, message=f"Engine {host.engine_version}")
    elif old_state == Host.State.PENDING:
        record_event("host.connected", obj=host, message=f"Engine {host.engine_version}")


def _apply(host: Host, result: EngineInfo | EngineError) -> None:
    now = timezone.now()
    host.last_heartbeat_at = now
    if isinstance(result, EngineError):
        host.state = Host.State.UNREACHABLE
        host.last_error = result.message
        return
    host.state = Host.State.DRAINING if host.draining else Host.State.ACTIVE
    host.last_error = ""
    host.last_seen_at = now
    for key, value in asdict(result).items():
        setattr(host, key, value)


def heartbeat(host_id: int) -> Host | None:
    """Ask one engine how it is and record the answer; None if the host is gone.

    The engine is asked outside any transaction (it may take the whole timeout); the
    row is then locked briefly so a concurrent drain or edit is not overwritten.
    """
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return None
    result = _probe(host)
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is None:
            return None
        old_state = host.state
        _apply(host, result)
        host.save()
        _transition_event(host, old_state)
    return host


def host_ids() -> list[int]:
    return list(Host.objects.order_by("pk").values_list("pk", flat=True))


def heartbeat_all() -> list[Host]:
    """Heartbeat every host, one after the other (the Celery task fans out instead)."""
    return [host for pk in host_ids() if (host := heartbeat(pk)) is not None]


def ensure_local_host() -> tuple[Host, bool]:
    """Register the engine at BERTH_DOCKER_HOST as "local" unless a host already uses it.

    Idempotent; returns (host, created) after one heartbeat, whatever its outcome.
    """
    endpoint = settings.BERTH_DOCKER_HOST
    host = Host.objects.filter(endpoint=endpoint).first()
    created = host is None
    if created:
        name = LOCAL_HOST_NAME
        suffix = 1
        while Host.objects.filter(name=name).exists():
            suffix += 1
            name = f"{LOCAL_HOST_NAME}-{suffix}"
        host = register_host(actor=None, name=name, endpoint=endpoint)
    return heartbeat(host.pk) or host, created
