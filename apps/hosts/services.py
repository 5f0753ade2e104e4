"""Registering, changing and watching Docker engines (Hosts).

Hosts are platform infrastructure: only platform admins (or the operator, through a
management command, with `actor=None`) change them. Every change records one Event
with no tenant; heartbeats record one only when a host's state changes.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
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
from apps.hosts.engine import (
    AVAILABILITIES,
    ClusterState,
    EngineError,
    EngineInfo,
    SwarmCluster,
    SwarmNodeInfo,
    forget_tls_files,
    get_engine,
)
from apps.hosts.engine.swarm import NodeEngine, node_engine_identity, node_engine_of
from apps.hosts.models import Host, SwarmNode

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
    if host.kind not in Host.Kind.values:
        kinds = ", ".join(Host.Kind.values)
        errors["kind"] = f"Unknown kind {host.kind!r}: use one of {kinds}."
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
    kind: str = Host.Kind.ENGINE,
) -> Host:
    """Add an engine, or a Swarm cluster by a manager's endpoint (`kind` "swarm");
    its state stays `pending` until the first heartbeat."""
    _require_operator(actor)
    host = Host(
        name=name,
        kind=kind,
        endpoint=endpoint,
        tls_ca_cert=tls_ca_cert,
        tls_client_cert=tls_client_cert,
        tls_client_key=tls_client_key,
        tls_verify=tls_verify,
        labels={} if labels is None else labels,
    )
    validate_host(host)
    host.save()
    what = "Swarm cluster " if host.is_swarm else ""
    record_event(
        "host.register", actor=actor, obj=host, message=f"{what}{host.name} at {host.endpoint}"
    )
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
    node_ids = list(host.swarm_nodes.exclude(engine_endpoint="").values_list("pk", flat=True))
    record_event("host.remove", actor=actor, obj=host, message=f"{host.name} at {host.endpoint}")
    host.delete()
    transaction.on_commit(lambda: forget_tls_files(host_id))
    for pk in node_ids:
        transaction.on_commit(lambda pk=pk: forget_tls_files(pk, prefix="node-"))


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


def _probe(host: Host) -> EngineInfo | ClusterState | EngineError:
    """Ask the engine for its info (a Swarm cluster: for its nodes and tasks too, in one
    pass); any failure comes back as the error, never raised."""
    engine = None
    try:
        engine = get_engine(host)
        if isinstance(engine, SwarmCluster):
            return engine.cluster_state()
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


def _apply(host: Host, result: EngineInfo | ClusterState | EngineError) -> None:
    now = timezone.now()
    if isinstance(result, ClusterState):
        result = result.info
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
    checks = _check_node_engines(host) if isinstance(result, ClusterState) else {}
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is None:
            return None
        old_state = host.state
        _apply(host, result)
        host.save()
        _transition_event(host, old_state)
        if isinstance(result, ClusterState) and host.is_swarm:
            record_cluster(host, result)
            record_node_engines(host, checks)
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


# --- Swarm clusters -------------------------------------------------------------------

NODE_FIELDS = (
    "hostname",
    "role",
    "availability",
    "state",
    "manager_status",
    "message",
    "address",
    "labels",
    "engine_version",
    "cpus",
    "memory_bytes",
)


def _node_event(host: Host, action: str, node: SwarmNode, message: str, failure: bool = False):
    record_event(
        action,
        obj=host,
        outcome=Event.Outcome.FAILURE if failure else Event.Outcome.SUCCESS,
        message=f"{node.hostname or node.node_id[:12]}: {message}",
        data={"node": node.node_id, "hostname": node.hostname},
    )


def _task_rows(state: ClusterState, node_id: str) -> list[dict[str, Any]]:
    """The tasks shown under a node: those Swarm still wants running there, and the
    latest finished one of each slot that is not (why a replica left, at a glance)."""
    rows = []
    for task in state.tasks_on(node_id):
        if task.desired_state == "shutdown" and task.state in ("shutdown", "complete"):
            continue
        rows.append(asdict(task))
    return rows


def _node_changes(node: SwarmNode, seen: SwarmNodeInfo) -> list[tuple[str, str, bool]]:
    """(action, message, failure) events for what changed between two readings."""
    changes = []
    if node.state != seen.state:
        if seen.state == "ready":
            changes.append(("host.node.ready", f"ready (was {node.state})", False))
        else:
            changes.append(("host.node.down", f"{seen.state} (was {node.state})", True))
    if node.availability != seen.availability:
        changes.append(("host.node.availability", f"availability {seen.availability}", False))
    if node.role != seen.role:
        changes.append(("host.node.role", f"now a {seen.role}", False))
    return changes


def record_cluster(host: Host, state: ClusterState) -> None:
    """Write what the manager said of its nodes (inside the heartbeat's transaction).

    New nodes are added ("host.node.join"), changed ones updated with one Event per change
    of state, availability or role, and nodes the manager no longer lists are marked
    gone ("host.node.gone"), never deleted: the row and its history stay for a person
    to look at, and come back to life if the node rejoins with the same id."""
    now = timezone.now()
    known = {n.node_id: n for n in SwarmNode.objects.select_for_update().filter(host=host)}
    for seen in state.nodes:
        node = known.pop(seen.node_id, None)
        values = {f: getattr(seen, f) for f in NODE_FIELDS}
        values["is_endpoint"] = seen.node_id == state.swarm.node_id
        tasks = _task_rows(state, seen.node_id)
        if node is None:
            node = SwarmNode.objects.create(host=host, node_id=seen.node_id, tasks=tasks, **values)
            _node_event(host, "host.node.join", node, f"joined as {seen.role}, {seen.state}")
            continue
        changes = _node_changes(node, seen)
        if node.gone_at is not None:
            changes.insert(0, ("host.node.join", f"back, as {seen.role}, {seen.state}", False))
        for key, value in values.items():
            setattr(node, key, value)
        node.tasks = tasks
        node.gone_at = None
        node.save()
        for action, message, failure in changes:
            _node_event(host, action, node, message, failure)
    for node in known.values():
        if node.gone_at is None:
            node.gone_at = now
            node.tasks = []
            node.save(update_fields=["gone_at", "tasks", "updated_at"])
            _node_event(host, "host.node.gone", node, "no longer in the swarm", failure=True)


def set_node_availability(*, actor: Any, host: Host, node_id: str, availability: str) -> SwarmNode:
    """Drain, pause or activate a node of a Swarm cluster host (Swarm itself moves a
    drained node's tasks to other nodes). Bad input is a ValidationError naming the
    field; an engine failure is raised as the EngineError for the caller to show."""
    _require_operator(actor)
    if not host.is_swarm:
        raise ValidationError({"host": "This host is a single engine, not a Swarm cluster."})
    if availability not in AVAILABILITIES:
        raise ValidationError(
            {"availability": f"Use one of {', '.join(AVAILABILITIES)}, not {availability!r}."}
        )
    node = SwarmNode.objects.filter(host=host, node_id=node_id, gone_at__isnull=True).first()
    if node is None:
        raise ValidationError({"node": "This cluster has no such node (it may have left)."})
    with get_engine(host) as engine:
        if not isinstance(engine, SwarmCluster):  # pragma: no cover - kind says swarm
            raise ValidationError({"host": "This host is not driven as a Swarm cluster."})
        seen = engine.set_node_availability(node_id, availability)
    with transaction.atomic():
        node = SwarmNode.objects.select_for_update().get(pk=node.pk)
        before = node.availability
        for key in NODE_FIELDS:
            setattr(node, key, getattr(seen, key))
        node.save()
        record_event(
            "host.node.availability",
            actor=actor,
            obj=host,
            message=f"{node.hostname}: {before} -> {node.availability}",
            data={"node": node.node_id, "hostname": node.hostname, "availability": availability},
        )
    return node


#: What `with_task_rows` reads of a node (prefetch them for many nodes).
TASK_ROWS = ("containers__stack__tenant", "containers__service")


def swarm_nodes(host: Host) -> list[SwarmNode]:
    """The cluster's nodes as last recorded: present ones first, gone ones after. Each
    has `task_rows`: its tasks at the last heartbeat, each with the Berth stack row
    mirroring it (`berth`: a Container, or None for a task Berth did not deploy), so
    the page names the tenant and stack of every task without asking the engine."""
    nodes = host.swarm_nodes.prefetch_related(*TASK_ROWS)
    found = sorted(nodes, key=lambda n: (n.gone, n.role != "manager", n.hostname))
    return [with_task_rows(node) for node in found]


def with_task_rows(node: SwarmNode) -> SwarmNode:
    """The node with `task_rows` (see `swarm_nodes`) set."""
    mirrored = {c.engine_id: c for c in node.containers.all()}
    node.task_rows = [
        {**task, "berth": mirrored.get(str(task.get("task_id") or ""))} for task in node.tasks
    ]
    return node


# --- Swarm nodes' own engines ---------------------------------------------------------

#: The fields of a node's engine endpoint, as the API, the form and the errors name them.
NODE_ENGINE_INPUT = ("endpoint", *TLS_FIELDS)


def node_engine_errors(endpoint: str, tls: dict[str, str]) -> dict[str, str]:
    """A node engine endpoint's input checked exactly as a host's endpoint and TLS
    material are (`_endpoint_error`, `_tls_errors`), errors by input field name."""
    draft = Host(endpoint=endpoint, **{f: tls.get(f, "") for f in TLS_FIELDS})
    if msg := _endpoint_error(endpoint):
        return {"endpoint": msg}
    return _tls_errors(draft)


def _identity_error(candidate: NodeEngine) -> str:
    """Why `candidate`'s endpoint is unusable for its node ("" when its engine answers
    and is that node): asked of the engine itself."""
    try:
        found = node_engine_identity(candidate)
    except EngineError as exc:
        return f"The engine there did not answer: {exc.message}"
    if found:
        return f"This endpoint reaches {found}, not the engine of node {candidate.name}."
    return ""


def set_node_engine(
    *, actor: Any, host: Host, node_id: str, endpoint: str, **tls: str
) -> SwarmNode:
    """Give one node of a Swarm cluster host its own engine endpoint (unix:// or tcp://
    with TLS, `tls` holding the host's TLS field names), so the shell, live stats and
    inspect reach the tasks on it; an empty `endpoint` takes it away. The engine is
    asked before anything is saved: it must answer and be that node (its Swarm
    NodeID), so an endpoint of another engine is refused, not stored. Bad input is a
    ValidationError naming the field (`endpoint`, a TLS field, `node`, `host`)."""
    _require_operator(actor)
    if not host.is_swarm:
        raise ValidationError({"host": "This host is a single engine, not a Swarm cluster."})
    unknown = sorted(set(tls) - set(TLS_FIELDS))
    if unknown:
        raise ValidationError({key: "This field cannot be set here." for key in unknown})
    node = SwarmNode.objects.filter(host=host, node_id=node_id, gone_at__isnull=True).first()
    if node is None:
        raise ValidationError({"node": "This cluster has no such node (it may have left)."})
    endpoint = (endpoint or "").strip()
    tls = {f: (tls.get(f) or "").strip() for f in TLS_FIELDS}
    if not endpoint:
        given = [f for f in TLS_FIELDS if tls[f]]
        if given:
            raise ValidationError({given[0]: "TLS material needs an endpoint to go with."})
        return _save_node_engine(actor, host, node, "", tls)
    if node.is_endpoint:
        raise ValidationError(
            {"node": "Berth already reaches this node's engine: it is the host's endpoint."}
        )
    errors = node_engine_errors(endpoint, tls)
    taken = SwarmNode.objects.filter(engine_endpoint=endpoint).exclude(pk=node.pk).first()
    if not errors and taken is not None:
        errors["endpoint"] = f"Node {taken.hostname} of {taken.host.name} already uses it."
    if not errors:
        candidate = NodeEngine(node.node_id, node.hostname, endpoint, *tls.values(), row_id=None)
        if reason := _identity_error(candidate):
            errors["endpoint"] = reason
    if errors:
        raise ValidationError(errors)
    return _save_node_engine(actor, host, node, endpoint, tls)


def _save_node_engine(
    actor: Any, host: Host, node: SwarmNode, endpoint: str, tls: dict[str, str]
) -> SwarmNode:
    with transaction.atomic():
        node = SwarmNode.objects.select_for_update().get(pk=node.pk)
        before = node.engine_endpoint
        node.engine_endpoint = endpoint
        for field in TLS_FIELDS:
            setattr(node, f"engine_{field}", tls[field])
        node.engine_verified_at = timezone.now() if endpoint else None
        node.engine_error = ""
        node.save()
        if not node.engine_uses_tls:
            pk = node.pk
            transaction.on_commit(lambda: forget_tls_files(pk, prefix="node-"))
        shown = endpoint or "removed"
        record_event(
            "host.node.engine",
            actor=actor,
            obj=host,
            message=f"{node.hostname}: engine endpoint {shown}",
            data={"node": node.node_id, "hostname": node.hostname, "endpoint": endpoint,
                  "before": before, "tls": node.engine_uses_tls},
        )  # fmt: skip
    return node


def _check_node_engines(host: Host) -> dict[int, tuple[str, str]]:
    """For each present node with an engine endpoint: (the endpoint checked, why it is
    not that node's engine, "" when it is), asked of the engines at once (threads: a
    dead node's engine must not hold the heartbeat for one timeout per node)."""
    nodes = list(host.swarm_nodes.exclude(engine_endpoint="").filter(gone_at__isnull=True))
    if not nodes:
        return {}

    def check(node: SwarmNode) -> str:
        try:
            return _identity_error(node_engine_of(node))
        except Exception as exc:  # a heartbeat must never crash the worker loop
            logger.exception("checking the engine of node %s failed unexpectedly", node.pk)
            return f"Unexpected error: {exc}"

    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        found = list(pool.map(check, nodes))
    return {n.pk: (n.engine_endpoint, reason) for n, reason in zip(nodes, found, strict=True)}


def record_node_engines(host: Host, checks: dict[int, tuple[str, str]]) -> None:
    """Write the heartbeat's checks of the nodes' engines (inside its transaction): a
    node whose engine stopped answering as itself is no longer offered for shells and
    stats (and an Event says why); one answering again is, with an Event too. A check
    of an endpoint changed meanwhile is dropped."""
    now = timezone.now()
    for node in SwarmNode.objects.select_for_update().filter(host=host, pk__in=list(checks)):
        endpoint, reason = checks[node.pk]
        if node.engine_endpoint != endpoint:
            continue
        was_reached = node.engine_verified_at is not None
        node.engine_verified_at = None if reason else now
        node.engine_error = reason
        node.save(update_fields=["engine_verified_at", "engine_error", "updated_at"])
        if was_reached and reason:
            _node_event(host, "host.node.engine_lost", node, reason, failure=True)
        elif not was_reached and not reason:
            _node_event(host, "host.node.engine_back", node, "its engine endpoint answers again")
