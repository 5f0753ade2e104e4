"""Berth's own health probes (berth.yml `health_check: {http: ...}` or `{tcp: ...}`), and
the periodic health pass that replaces containers unhealthy past their threshold.

A probe goes from the worker to a container Berth runs, at its address on the stack's
environment network as the engine reported it for a container listed with this
installation's labels: never to an address taken from a user, a template or a request.
HTTP probes never follow redirects (a redirect is an answer: its status is judged).

What a probe found is kept in Redis per container (`ProbeStore`): the health pass, the
reconciler's wait for health and the mirror read the same state, so a container a
rolling upgrade saw healthy is written healthy at once, and the pass keeps counting
failures across its runs. Docker's own "unhealthy" is noted there too, with the time a
pass first saw it: both kinds of check are replaced past the same threshold.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.deployments import containers as naming
from apps.deployments import health, listing
from apps.deployments.health import Check, ProbeState
from apps.deployments.models import Container, Revision, Route, Service, Stack
from apps.deployments.signals import frontier_changed, remove_container
from apps.hosts.engine import EngineDriver, ManagedContainer
from apps.hosts.models import Host

log = logging.getLogger(__name__)
KEPT_SECONDS = 3600  # a container's probe state outlives any interval by far
MAX_PROBES_AT_ONCE = 16
USER_AGENT = "Berth-Health/1"


# --- one probe ------------------------------------------------------------------------------


def probe(check: Check, container: ManagedContainer, network: str) -> tuple[bool, str]:
    """Probe `container` as `check` says: (passed, what was found)."""
    address = address_of(container, network)
    if not address:
        return False, "no address on the environment network"
    if check.kind == "http":
        return probe_http(address, check.port, check.path, check.expect_status, check.timeout)
    return probe_tcp(address, check.port, check.timeout)


def address_of(container: ManagedContainer, network: str) -> str:
    """The container's own address on `network`, the environment network Berth created
    for it, and only a unicast one: never loopback, link-local or unspecified."""
    found = container.addresses.get(network) or ""
    try:
        ip = ipaddress.ip_address(found)
    except ValueError:
        return ""
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
        return ""
    return str(ip)


def probe_http(
    address: str, port: int, path: str, expect_status: int | None, timeout: float
) -> tuple[bool, str]:
    """GET `path`: passes on `expect_status`, or on any 2xx/3xx when none is set (what
    HAProxy's httpchk accepts by default)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Connection": "close"})
        response = conn.getresponse()
        status = response.status
        response.read(4096)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path} on port {port}: {_why(exc)}"
    finally:
        conn.close()
    ok = status == expect_status if expect_status else 200 <= status < 400
    wanted = f"wanted {expect_status}" if expect_status else "wanted 2xx or 3xx"
    return ok, f"GET {path} on port {port} answered {status}" + ("" if ok else f" ({wanted})")


def probe_tcp(address: str, port: int, timeout: float) -> tuple[bool, str]:
    """A TCP connection to `port` is accepted."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True, f"port {port} accepts connections"
    except OSError as exc:
        return False, f"port {port}: {_why(exc)}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


# --- the shared state -------------------------------------------------------------------------


class ProbeStore:
    """Each container's ProbeState in Redis, per installation. Redis down: reads find
    nothing and writes are dropped (the broker is down too, so no pass runs)."""

    def __init__(self) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )

    @staticmethod
    def key(engine_id: str) -> str:
        return f"berth:{settings.BERTH_INSTALLATION_ID}:health:{engine_id}"

    def get_many(self, engine_ids: Iterable[str]) -> dict[str, ProbeState]:
        ids = list(engine_ids)
        if not ids:
            return {}
        try:
            values = self._redis.mget([self.key(i) for i in ids])
        except self._errors as exc:
            log.warning("probe states unreadable: %s", exc)
            return {}
        found = {}
        for engine_id, value in zip(ids, values, strict=True):
            if value:
                try:
                    found[engine_id] = ProbeState(**json.loads(value))
                except (TypeError, ValueError):
                    continue
        return found

    def put(self, engine_id: str, state: ProbeState) -> None:
        try:
            self._redis.set(self.key(engine_id), json.dumps(asdict(state)), ex=KEPT_SECONDS)
        except self._errors as exc:
            log.warning("probe state of %s not kept: %s", engine_id[:12], exc)

    def forget(self, engine_ids: Iterable[str]) -> None:
        keys = [self.key(i) for i in engine_ids]
        if keys:
            try:
                self._redis.delete(*keys)
            except self._errors as exc:
                log.warning("probe states not forgotten: %s", exc)


# --- the reconciler's wait ----------------------------------------------------------------------


class Waiter:
    """Berth's probe as the reconciler's wait for health sees it: `health(container)`
    probes when one is due and answers healthy/unhealthy/starting as Docker would, for
    a service with an http/tcp check; for any other service the engine's own health."""

    def __init__(self, spec: dict, service: str, network: str) -> None:
        self.check = health.check_of(spec, service)
        self.network = network
        self.states: dict[str, ProbeState] = {}
        self.found: dict[str, ManagedContainer] = {}
        self.store = ProbeStore() if self.check.probed else None

    @property
    def active(self) -> bool:
        return self.check.probed

    def health(self, container: ManagedContainer) -> str:
        if self.store is None or container.state != "running":
            return container.health
        state = self.states.get(container.id)
        if state is None:
            state = self.store.get_many([container.id]).get(container.id)
        now = time.time()
        if health.due(state, self.check, container.created, now):
            ok, reason = probe(self.check, container, self.network)
            state = health.after_probe(
                state or ProbeState(), ok, reason, self.check, container.created, now
            )
            self.store.put(container.id, state)
        state = state or ProbeState()
        self.states[container.id] = state
        return state.health

    def health_of(self, engine: EngineDriver, filters: dict[str, str], container_id: str) -> str:
        """The health of one container found by its id among `filters`' containers
        (listed again until it has an address: it may have been listed before it started)."""
        known = self.found.get(container_id)
        if known is None or not address_of(known, self.network):
            for item in engine.list_managed(filters):
                self.found[item.id] = item
        item = self.found.get(container_id)
        return self.health(item) if item is not None else "starting"

    def reason(self, container_id: str) -> str:
        state = self.states.get(container_id)
        return state.reason if state else ""


# --- the periodic pass ------------------------------------------------------------------------


@dataclass
class Unhealthy:
    """A container past its threshold, for the pass's caller to replace under the lease."""

    stack: Stack
    container: ManagedContainer
    service: str
    check: Check
    reason: str


@dataclass
class PassResult:
    """What one pass found: stacks looked at, probes run, stacks whose containers'
    health changed, containers past their threshold."""

    stacks: list[int] = field(default_factory=list)
    probed: int = 0
    changed: set[int] = field(default_factory=set)
    unhealthy: list[Unhealthy] = field(default_factory=list)


def check_host(host: Host, engine: EngineDriver) -> PassResult:
    """Probe the containers due a probe, note Docker's unhealthy ones, and list those
    unhealthy past their threshold. The containers as the host pass sees them (listing.py:
    at most one engine list call) and two queries per pass (plus one for revisions not
    seen before), whatever the number of containers."""
    by_stack: dict[str, list[ManagedContainer]] = {}
    for item in listing.current(host, engine).containers:
        if item.state == "running":
            by_stack.setdefault(item.labels.get(naming.STACK, ""), []).append(item)
    ids = [int(k) for k in by_stack if k.isdecimal()]
    stacks = list(
        Stack.objects.filter(pk__in=ids, desired_state=Stack.Desired.RUNNING)
        .exclude(current_revision=None)
        .select_related("tenant")
        .only("pk", "name", "tenant", "environment_id", "current_revision_id")
    )
    checks = checks_of([stack.current_revision_id for stack in stacks])
    mine: list[tuple[Stack, ManagedContainer, Check]] = []
    for stack in stacks:
        of_revision = checks[stack.current_revision_id]
        for item in by_stack.get(str(stack.pk), []):
            if item.labels.get(naming.TENANT_ID) != str(stack.tenant_id):
                continue  # says it is this stack's but another tenant's: not ours to judge
            mine.append(
                (stack, item, of_revision.get(item.labels.get(naming.SERVICE, ""), Check()))
            )
    store = ProbeStore()
    states = store.get_many(item.id for _, item, _ in mine)
    now = time.time()
    result = PassResult(stacks=[stack.pk for stack in stacks])
    jobs = []
    for stack, item, check in mine:
        if not check.probed:
            _note_docker_health(store, states, item, now)
        elif health.due(states.get(item.id), check, item.created, now):
            jobs.append((stack, item, check, naming.network_name(stack)))
    result.probed = len(jobs)
    _run_probes(jobs, states, store, result, host, now)
    # Draining ones are on their way out already (a rollout, a replacement under way).
    draining = set(
        Container.objects.filter(host=host, draining=True).values_list("engine_id", flat=True)
    )
    for stack, item, check in mine:
        state = states.get(item.id)
        if item.id in draining:
            continue
        if state and health.past_threshold(check, item.created, state.since, now):
            service = item.labels.get(naming.SERVICE, "")
            reason = state.reason or "unhealthy"
            result.unhealthy.append(Unhealthy(stack, item, service, check, reason))
    return result


# Revision id -> each service's Check: revisions never change, so a pass every few
# seconds reads a spec once per worker process, not once per pass.
_CHECKS: dict[int, dict[str, Check]] = {}
_CHECKS_KEPT = 4096


def checks_of(revision_ids: Iterable[int]) -> dict[int, dict[str, Check]]:
    """Each revision's checks by service name, from the cache or one query."""
    wanted = set(revision_ids)
    missing = wanted - set(_CHECKS)
    if missing:
        if len(_CHECKS) + len(missing) > _CHECKS_KEPT:
            _CHECKS.clear()
        for pk, spec in Revision.objects.filter(pk__in=missing).values_list("pk", "spec"):
            names = ((spec or {}).get("project") or {}).get("services") or {}
            _CHECKS[pk] = {name: health.check_of(spec, name) for name in names}
    return {pk: _CHECKS.get(pk, {}) for pk in wanted}


def _note_docker_health(
    store: ProbeStore, states: dict[str, ProbeState], item: ManagedContainer, now: float
) -> None:
    """Remember when a pass first saw Docker call the container unhealthy."""
    known = states.get(item.id)
    since = health.unhealthy_since(item.health, known.since if known else 0.0, now)
    if since and not (known and known.since):
        states[item.id] = ProbeState(
            health="unhealthy", reason="Docker's health check", since=since
        )
        store.put(item.id, states[item.id])
    elif not since and known:
        states.pop(item.id)
        store.forget([item.id])


def _run_probes(
    jobs: list[tuple[Stack, ManagedContainer, Check, str]],
    states: dict[str, ProbeState],
    store: ProbeStore,
    result: PassResult,
    host: Host,
    now: float,
) -> None:
    """The due probes, several at once (each bounded by its timeout); a changed health is
    written to the container's row at once."""
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=min(MAX_PROBES_AT_ONCE, len(jobs))) as pool:
        outcomes = list(pool.map(lambda job: probe(job[2], job[1], job[3]), jobs))
    for (stack, item, check, _), (ok, reason) in zip(jobs, outcomes, strict=True):
        before = states.get(item.id) or ProbeState()
        state = health.after_probe(before, ok, reason, check, item.created, now)
        states[item.id] = state
        store.put(item.id, state)
        if (state.health, state.reason) != (before.health, before.reason):
            Container.objects.filter(host=host, engine_id=item.id).update(
                health=state.health, health_reason=state.reason[:1000]
            )
        if state.health != before.health:
            result.changed.add(stack.pk)


def routed_stacks(stack_ids: Iterable[int]) -> set[int]:
    """The stacks among `stack_ids` that have a route on the frontier."""
    ids = list(stack_ids)
    if not ids:
        return set()
    return set(Route.objects.filter(stack_id__in=ids).values_list("stack_id", flat=True))


# --- replacing an unhealthy container ------------------------------------------------------


def replace_unhealthy(
    host: Host, engine: EngineDriver, found: Unhealthy, stop_timeout: int
) -> bool:
    """Drain, stop and remove a container unhealthy past its threshold, and record it on
    its service (flapping when replaced again and again); the caller holds the stack's
    lease and reconciles afterwards, which starts the replica again. False when a
    flapping service's backoff says to wait."""
    stack, item = found.stack, found.container
    service = Service.objects.filter(stack=stack, name=found.service).first()
    if service is None:
        return False
    now = timezone.now()
    if not health.may_replace(service.replacements, service.flapping, now):
        return False
    routed = Route.objects.filter(service=service).exists()
    Container.objects.filter(host=host, engine_id=item.id).update(draining=True)
    frontier_changed.send(sender=Container, stack_id=stack.pk, reason="unhealthy")
    if routed:
        time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)
    engine.stop(item.id, timeout=stop_timeout)
    remove_container(host, engine, item.id)
    ProbeStore().forget([item.id])
    replacements = health.record_replacement(service.replacements, now)
    count = health.flapping_count(replacements, now)
    flapping = count >= health.FLAP_COUNT
    Service.objects.filter(pk=service.pk).update(replacements=replacements, flapping=flapping)
    _event(
        stack,
        "container.replace",
        f"Replaced {item.name}: unhealthy for {found.check.threshold:g}s ({found.reason})",
        {"service": found.service, "reason": "unhealthy", "container": item.name},
    )
    if flapping and not service.flapping:
        _event(
            stack,
            "service.flapping",
            f"{found.service} is flapping: {health.flapping_reason(count)}",
            {"service": found.service, "count": count},
        )
    return True


def clear_flapping(stack_ids: Iterable[int]) -> list[Service]:
    """Services whose last replacement is a whole flapping window old stop flapping."""
    now = timezone.now()
    cleared = []
    for service in Service.objects.filter(stack_id__in=list(stack_ids), flapping=True):
        if not health.is_flapping(service.replacements, now):
            Service.objects.filter(pk=service.pk).update(flapping=False)
            _event(
                service.stack,
                "service.flapping_cleared",
                f"{service.name} is no longer flapping: no replacement for "
                f"{int(health.FLAP_WINDOW.total_seconds() // 60)} minutes",
                {"service": service.name},
                outcome=Event.Outcome.SUCCESS,
            )
            cleared.append(service)
    return cleared


def _event(
    stack: Stack,
    action: str,
    message: str,
    data: dict[str, Any],
    outcome: str = Event.Outcome.FAILURE,
) -> None:
    record_event(
        action,
        tenant=stack.tenant,
        obj=stack,
        outcome=outcome,
        message=message,
        data={"stack": stack.pk, **data},
    )
