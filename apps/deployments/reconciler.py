"""The reconciler: make one engine match a stack's current Revision, level-triggered.

observe (one filtered list call) -> plan (pure) -> apply wave by wave -> observe again ->
mirror Container/Service rows and the stack's state. Nothing is remembered between runs
except what the engine's labels and the database say, so a re-run after a crash (SIGKILL,
engine restart, database restore) continues from what is really there; the planner keeps
one container per (service, replica), so nothing is duplicated.

A per-stack lease (`claimed_by`/`claimed_until`, taken with one conditional UPDATE and
renewed between steps) keeps two workers from acting on the same stack at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db.models import Prefetch, Q
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.compose.spec import ComposeProject
from apps.core.queue import tenant_slot
from apps.deployments import containers as naming
from apps.deployments import (
    hostpass,
    listing,
    live,
    probes,
    readiness,
    secret_store,
    swarm_reconcile,
)
from apps.deployments.mirror import mirror, stack_state
from apps.deployments.models import Container, Rollout, Route, Secret, Stack
from apps.deployments.planner import (
    Action,
    Create,
    DesiredService,
    DesiredStack,
    EnsureNetwork,
    EnsureVolume,
    ObservedContainer,
    Pull,
    Remove,
    Replace,
    Start,
    Stop,
    Wave,
    plan,
)
from apps.deployments.rolling import (
    BatchFailedError,
    RollingUpdate,
    RolloutFailedError,
    RolloutSteps,
    close_thread_connection,
)
from apps.deployments.signals import remove_container
from apps.deployments.spec import project_from_spec
from apps.hosts.engine import EngineDriver, EngineError, ManagedContainer, get_engine
from apps.hosts.models import Host
from apps.registry.deploy import authorise_image
from apps.tenants.models import RetiredTenant

log = logging.getLogger(__name__)
# While waiting on Berth's own http/tcp probes: one filtered list call per poll. Waits on
# Docker's health react to the engine's events instead (readiness.py).
POLL_SECONDS = 0.1


def lease_seconds() -> int:
    """At least one stop grace period plus an engine call: the lease is renewed between
    steps, and one step (a stop) may wait out the longest grace allowed."""
    floor = max_stop_grace() + settings.BERTH_ENGINE_TIMEOUT + 30
    return max(settings.BERTH_RECONCILE_LEASE_SECONDS, floor)


def max_stop_grace() -> int:
    return settings.BERTH_MAX_STOP_GRACE_SECONDS


def orphan_grace_seconds() -> int:
    return settings.BERTH_ORPHAN_GRACE_SECONDS


def default_timeout() -> int:
    return settings.BERTH_OPERATION_TIMEOUT


def pass_deadline(stack: Stack, now: datetime) -> datetime:
    """When this pass gives up: the user's operation's deadline while one runs; for the
    periodic repair of a stack with no operation, `default_timeout()` from now. The
    start of an operation that ended long ago (it failed or expired) must not count:
    every later pass would then give up at once and the stack never heal."""
    if stack.operation:
        started = stack.operation_started_at or now
        return stack.operation_deadline or started + timedelta(seconds=default_timeout())
    return now + timedelta(seconds=default_timeout())


class CancelledError(Exception):
    """The user cancelled the operation, or its deadline passed."""


class WaitFailedError(Exception):
    """A dependency cannot reach its condition (unhealthy, exited)."""


# --- the lease --------------------------------------------------------------------------


def claim(stack_id: int) -> str | None:
    """Take the stack's lease for this worker; None when another worker holds it."""
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    taken = (
        Stack.objects.filter(pk=stack_id)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_by=token, claimed_until=now + timedelta(seconds=lease_seconds()))
    )
    return token if taken else None


def renew(stack_id: int, token: str) -> None:
    until = timezone.now() + timedelta(seconds=lease_seconds())
    Stack.objects.filter(pk=stack_id, claimed_by=token).update(claimed_until=until)


def release(stack_id: int, token: str) -> None:
    Stack.objects.filter(pk=stack_id, claimed_by=token).update(claimed_by="", claimed_until=None)


# --- where a stack runs -----------------------------------------------------------------


def target_host(stack: Stack) -> Host | None:
    """The environment's first single engine not draining, else "local", else the first
    active engine. Swarm cluster hosts are never picked: a stack on a swarm is
    reconciled by swarm_reconcile.py, not as containers on the manager's engine."""
    hosts = stack.environment.hosts.filter(draining=False, kind=Host.Kind.ENGINE).order_by("pk")
    return hosts.first() or _fallback_host()


def _fallback_host() -> Host | None:
    """Where a stack whose environment has no usable host runs."""
    engines = Host.objects.filter(kind=Host.Kind.ENGINE)
    return (
        engines.filter(name="local").order_by("pk").first()
        or engines.filter(state=Host.State.ACTIVE).order_by("pk").first()
    )


def observed_from(
    listed: list[ManagedContainer], user_stopped: set[str] | frozenset[str] = frozenset()
) -> list[ObservedContainer]:
    """The planner's view of listed containers (labels say which slot they fill)."""
    result = []
    for c in listed:
        try:
            replica = int(c.labels.get(naming.REPLICA, "0"))
            revision = int(c.labels.get(naming.REVISION, "0"))
        except ValueError:
            replica, revision = 0, 0
        result.append(
            ObservedContainer(
                id=c.id,
                service=c.labels.get(naming.SERVICE, ""),
                replica=replica,
                hash=c.labels.get(naming.SPEC_HASH, ""),
                state=c.state,
                health=c.health,
                created=c.created,
                revision=revision,
                user_stopped=c.id in user_stopped,
            )
        )
    return result


# --- entry points -------------------------------------------------------------------------


def reconcile_stack(stack_id: int) -> None:
    """Converge one stack; a no-op when another worker holds it. Safe to re-run."""
    token = claim(stack_id)
    if token is None:
        return
    try:
        for _ in range(MAX_PASSES):
            stack = _load(stack_id)
            if stack is None:
                return
            swarm = swarm_reconcile.targets_swarm(stack.environment)
            if swarm is not None:  # Swarm services, not containers (swarm_reconcile.py)
                swarm_reconcile.reconcile_swarm_stack(stack, swarm)
                if not _changed_since(stack):
                    return
                continue
            host = target_host(stack)
            if host is None:
                _set_state(stack, Stack.State.UNKNOWN, "No Docker host is available.")
                return
            with get_engine(host) as engine:
                Run(stack, host, engine, token).execute()
            if not _changed_since(stack):
                return
    finally:
        release(stack_id, token)


MAX_PASSES = 3


def _load(stack_id: int) -> Stack | None:
    related = ("tenant", "environment", "current_revision")
    stacks = Stack.objects.select_related(*related).prefetch_related(*_traffic_prefetch())
    return stacks.filter(pk=stack_id).first()


def _traffic_prefetch() -> tuple[Prefetch, Prefetch]:
    """Each stack's routes and active rollouts, read with the stacks: a host pass pays
    two queries for them, not two per stack."""
    return (
        Prefetch("routes", queryset=Route.objects.select_related("service"), to_attr="route_rows"),
        Prefetch(
            "rollouts",
            queryset=Rollout.objects.filter(state__in=Rollout.ACTIVE),
            to_attr="active_rollouts",
        ),
    )


def _changed_since(stack: Stack) -> bool:
    """A change written while we worked (its task found the lease taken and gave up):
    run again now rather than at the next beat."""
    now = Stack.objects.filter(pk=stack.pk).values(
        "current_revision_id", "desired_state", "operation"
    )
    row = now.first()
    if row is None:
        return False
    before = (stack.current_revision_id, stack.desired_state)
    return (row["current_revision_id"], row["desired_state"]) != before or (
        row["operation"] and row["operation"] != stack.operation
    )


def reconcile_host(host_id: int) -> dict[str, int]:
    """The host's containers (listing.py: a full list, or only those the engine's events
    named since the last pass); reconcile every stack placed there; remove orphans.

    Returns counters (stacks reconciled, orphans removed, api calls, whether everything
    was listed, containers listed by id) for logs and tests.
    """
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return {}
    if host.kind == Host.Kind.SWARM:
        return swarm_reconcile.reconcile_cluster(host)
    stacks = _stacks_on(host)
    with get_engine(host) as engine:
        try:
            seen = listing.current(host, engine)
        except EngineError as exc:
            for stack in stacks:
                _set_state(stack, Stack.State.UNKNOWN, f"The engine is unreachable: {exc}")
            return {"stacks": 0, "orphans": 0, "api_calls": engine.api_calls}
        counters = reconcile_listed(host, engine, stacks, seen.containers)
        return {
            **counters,
            "api_calls": engine.api_calls,
            "full_list": int(seen.full),
            "relisted": seen.relisted,
        }


def reconcile_listed(
    host: Host, engine: EngineDriver, stacks: list[Stack], listed: list[ManagedContainer]
) -> dict[str, int]:
    """The host pass after its list call: each stack is fed its share of `listed` and
    planned; the stacks with nothing to do are mirrored together in a fixed number of
    queries (hostpass.py), then each stack with work to do is reconciled in turn under
    its lease, then orphans are looked for. The database work does not grow with the
    number of quiet stacks or containers; the engine is only called for work to do (or
    troubled containers).
    """
    by_stack = _by_stack(stacks, listed)
    # Read after the list call: a user's stop marks the row before it stops the container,
    # so every container listed as stopped by a user is already marked here.
    stopped = _user_stopped(host, stacks)
    runs, quiet = [], []
    for stack in stacks:
        run = _prepared(stack, host, engine, by_stack.pop(str(stack.pk), []), stopped)
        if run is not None:
            (quiet if _is_quiet(run) else runs).append(run)
    done = hostpass.settle_quiet(host, engine, quiet, lease_seconds())
    done += sum(_reconcile_one(run) for run in runs)
    orphans = _remove_orphans(engine, by_stack, {str(s.pk) for s in stacks})
    return {"stacks": done, "orphans": orphans}


def _by_stack(stacks: list[Stack], listed: list[ManagedContainer]) -> dict:
    """Listed containers by the stack id on their labels."""
    by_stack: dict[str, list[ManagedContainer]] = {}
    tenants = {str(s.pk): str(s.tenant_id) for s in stacks}
    for container in listed:  # all this installation's: the list call filtered on it
        stack_id = container.labels.get(naming.STACK, "")
        if stack_id in tenants and container.labels.get(naming.TENANT_ID) != tenants[stack_id]:
            continue  # says it is our stack's but another tenant's: neither adopted nor removed
        by_stack.setdefault(stack_id, []).append(container)
    return by_stack


def _prepared(
    stack: Stack,
    host: Host,
    engine: EngineDriver,
    listed: list[ManagedContainer],
    stopped: dict[int, set[str]],
) -> Run | None:
    """A run of `stack` fed its listed containers (its lease is taken later)."""
    try:
        mine = stopped.get(stack.pk, set())
        return Run(stack, host, engine, "", listed=listed, user_stopped=mine)
    except Exception:  # one broken stack must not stop the others
        log.exception("reconcile of stack %s failed", stack.pk)
        return None


def _is_quiet(run: Run) -> bool:
    try:
        return hostpass.is_quiet(run)
    except Exception:  # the stack's own run (the one-stack path) will meet it too
        log.exception("planning stack %s failed", run.stack.pk)
        return False


def _reconcile_one(run: Run) -> int:
    """A stack with work to do, under its lease; 1 when it was reconciled."""
    stack = run.stack
    # Inside one of the tenant's worker slots, like the stack's own task: a tenant's
    # slow stops never hold the worker another tenant's deploy needs. A tenant at its
    # bound is skipped this pass (its own tasks are converging it).
    with tenant_slot(stack.tenant_id, ttl=lease_seconds()) as held:
        if not held:
            return 0
        token = claim(stack.pk)
        if token is None:
            return 0
        run.token = token
        try:
            run.execute()
            return 1
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # one broken stack must not stop the others
            log.exception("reconcile of stack %s failed", stack.pk)
            return 0
        finally:
            release(stack.pk, token)


def _stacks_on(host: Host) -> list[Stack]:
    """Stacks placed on `host` (as `target_host` decides), in one query plus their
    environments' usable hosts."""
    usable = Prefetch(
        "environment__hosts",
        queryset=Host.objects.filter(draining=False).order_by("pk"),
        to_attr="usable_hosts",
    )
    stacks = Stack.objects.select_related("tenant", "environment", "current_revision")
    fallback: list[Host | None] = []
    placed = []
    for stack in stacks.prefetch_related(usable, *_traffic_prefetch()).order_by("pk"):
        hosts = stack.environment.usable_hosts
        if not hosts and not fallback:
            fallback.append(_fallback_host())
        chosen = hosts[0] if hosts else fallback[0]
        if chosen is not None and chosen.pk == host.pk:
            placed.append(stack)
    return placed


def _user_stopped(host: Host, stacks: list[Stack]) -> dict[int, set[str]]:
    """Stack id -> engine ids of its containers on `host` that a user stopped."""
    rows = Container.objects.filter(
        host=host, user_stopped=True, stack_id__in=[s.pk for s in stacks]
    ).order_by()
    result: dict[int, set[str]] = {}
    for stack_id, engine_id in rows.values_list("stack_id", "engine_id"):
        result.setdefault(stack_id, set()).add(engine_id)
    return result


def _remove_orphans(
    engine: EngineDriver, by_stack: dict[str, list[ManagedContainer]], placed: set[str]
) -> int:
    """This installation's containers that no stack owns, once older than the grace period.

    `by_stack` comes from a list call filtered on this installation's id, so another
    Berth's containers on a shared engine are never candidates, whatever their labels.
    """
    candidates = {k: v for k, v in by_stack.items() if k.isdecimal() and k not in placed}
    if not candidates:
        return 0
    # A deleted tenant's containers wait for its retirement's grace period (retirement.py).
    retiring = {
        str(pk)
        for pk in RetiredTenant.objects.filter(removed_at__isnull=True).values_list(
            "tenant_id", flat=True
        )
    }
    ids = [int(k) for k in candidates]
    existing = {str(pk) for pk in Stack.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    cutoff = time.time() - orphan_grace_seconds()
    removed = 0
    for stack_id, listed in candidates.items():
        if stack_id in existing:
            continue
        for container in listed:
            if container.labels.get(naming.TENANT_ID) in retiring:
                continue
            created = _created_at(container)
            if created and created < cutoff:
                engine.remove(container.id)
                removed += 1
    return removed


def _created_at(container: ManagedContainer) -> float:
    try:
        return float(container.labels.get(naming.CREATED_AT) or container.created)
    except ValueError:
        return container.created


def _set_state(stack: Stack, state: str, reason: str) -> None:
    if stack.state == state and stack.state_reason == reason:
        return
    Stack.objects.filter(pk=stack.pk).update(state=state, state_reason=reason)
    if state == Stack.State.UNKNOWN:
        record_event(
            "stack.engine_unreachable",
            tenant=stack.tenant,
            obj=stack,
            outcome=Event.Outcome.FAILURE,
            message=reason,
        )
    stack.state, stack.state_reason = state, reason


# --- one run --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a service's actions did, collected in a worker thread, recorded by the run."""

    events: list[tuple[str, str, str, dict]] = field(default_factory=list)
    error: str = ""


class Run(RolloutSteps):
    """One reconcile pass over one stack, holding the lease `token`.

    Changes of running services go through the rolling executor (rolling.py): batches,
    health before drain, the frontier's drain protocol, rollback on failure.
    """

    def __init__(
        self,
        stack: Stack,
        host: Host,
        engine: EngineDriver,
        token: str,
        listed: list[ManagedContainer] | None = None,
        user_stopped: set[str] | None = None,
    ) -> None:
        self.stack = stack
        self.host = host
        self.engine = engine
        self.token = token
        self.listed = listed
        # Engine ids a user stopped, when the caller read them after its list call.
        self.user_stopped = user_stopped
        self.revision = stack.current_revision
        self.spec: dict = self.revision.spec if self.revision else {}
        self.project: ComposeProject | None = project_from_spec(self.spec) if self.spec else None
        self.store, self.store_error = self.store_entries()
        self.deadline = pass_deadline(stack, timezone.now())
        self.failure = ""
        self.changed = False
        self.seen: dict[str, ObservedContainer] = {}  # this pass's containers by engine id
        self.rolled_back = False  # a rollout failed and set the stack's revision back
        self.traffic_lock = threading.Lock()  # one mirror + frontier reload at a time
        self.held: set[str] = set()  # services whose canary runs: left alone

    def store_entries(self) -> tuple[dict[str, dict[str, Secret]], str]:
        """The store entries the spec names (none: no query) and, folded into this pass's
        copy of the spec, their versions: a rotation changes the services' hashes, so
        their containers are replaced. An entry gone from the store fails the pass."""
        if not self.spec or not any(secret_store.referenced(self.spec).values()):
            return {}, ""
        try:
            store = secret_store.entries_for(self.stack, self.spec)
        except secret_store.StoreError as exc:
            return {}, str(exc)
        self.spec = {**self.spec, "store_versions": secret_store.store_versions(store)}
        return store, ""

    def first_listing(self) -> list[ManagedContainer] | None:
        """The stack's containers as the pass begins (the host pass's list when given);
        None when the engine does not answer (the stack's state says so)."""
        try:
            if self.listed is not None:
                return self.listed + self.observe_legacy()
            return self.observe()
        except EngineError as exc:
            _set_state(self.stack, Stack.State.UNKNOWN, f"The engine is unreachable: {exc}")
            return None

    def store_failed(self, listed: list[ManagedContainer]) -> bool:
        """An entry the stack needs is gone: the pass changes nothing and says why."""
        if not self.store_error or self.stack.desired_state == Stack.Desired.REMOVED:
            return False
        self.failure = self.store_error
        self.event("stack.reconcile", self.failure, outcome=Event.Outcome.FAILURE)
        self.finish(listed)
        return True

    # observe / plan / apply ------------------------------------------------------------

    def observe(self) -> list[ManagedContainer]:
        return self.engine.list_managed(self.filters()) + self.observe_legacy()

    def filters(self, **extra: str) -> dict[str, str]:
        """Stack and tenant ids (the driver adds this installation's id to every filter)."""
        return {"stack": str(self.stack.pk), "tenant-id": str(self.stack.tenant_id), **extra}

    def observe_legacy(self) -> list[ManagedContainer]:
        """Containers this stack ran before engine names carried the installation id.

        Only for stacks that existed then (the migration marks them): containers with the
        stack's id, tenant and environment slugs and its old name, and no installation
        label. The planner replaces them (their hash never matches), so the stack moves to
        its new names one container at a time, in the service's update order; the flag is
        cleared, and the old stack network removed, once none is left.
        """
        stack = self.stack
        if not stack.legacy_containers:
            return []
        found = [
            c
            for c in self.engine.list_legacy({"stack": str(stack.pk), "tenant": stack.tenant.slug})
            if c.name.startswith(naming.legacy_container_prefix(stack))
        ]
        if not found:
            self.engine.remove_network(
                naming.legacy_stack_network_name(stack), owner=naming.legacy_owner(stack)
            )
            Stack.objects.filter(pk=stack.pk).update(legacy_containers=False)
            stack.legacy_containers = False
        return found

    def observed(self, listed: list[ManagedContainer]) -> list[ObservedContainer]:
        stopped = self.user_stopped
        if stopped is None:
            stopped = set(
                self.stack.containers.filter(host=self.host, user_stopped=True)
                .order_by()
                .values_list("engine_id", flat=True)
            )
        return observed_from(listed, stopped)

    def execute(self) -> None:
        if self.project is None and self.stack.desired_state != Stack.Desired.REMOVED:
            return
        listed = self.first_listing()
        if listed is None or self.store_failed(listed):
            return
        desired = self.desired()
        if self.stack.operation == "start":
            self.stack.containers.filter(user_stopped=True).update(user_stopped=False)
            self.user_stopped = None  # read them again
        observed = self.observed(listed)
        self.seen = {c.id: c for c in observed}
        self.held = self.holds()
        waves = self.held_back(plan(desired, observed), self.held)
        try:
            self.leave_frontier(waves)
            for wave in waves:
                self.apply(wave)
            if not self.rolled_back:
                self.settle_rollouts()
            if self.stack.operation == "restart" and self.failure == "":
                self.restart_all()
            if waves or self.stack.operation:
                self.wait_until_settled()
            if waves or self.stack.operation == "restart":
                listed = self.observe()
        except CancelledError as exc:
            self.failure = str(exc)
            listed = self._safe_observe(listed)
        except (EngineError, WaitFailedError, BatchFailedError, RolloutFailedError) as exc:
            # RolloutFailedError: a routed restart's batch did not get healthy (paused).
            self.failure = str(exc)
            self.event("stack.reconcile", str(exc), outcome=Event.Outcome.FAILURE)
            listed = self._safe_observe(listed)
        self.finish(listed)

    def _safe_observe(self, fallback: list[ManagedContainer]) -> list[ManagedContainer]:
        try:
            return self.observe()
        except EngineError:
            return fallback

    def desired(self):
        if self.project is None:  # removing a stack that never got a revision
            return DesiredStack(services={}, state=Stack.Desired.REMOVED)
        return naming.desired_stack(
            self.stack, self.spec, self.project, routed=self.routed_services()
        )

    def leave_frontier(self, waves: list[Wave]) -> None:
        """Stopping or removing the stack: the frontier drops a stack not desired running;
        tell it, and give requests in flight their drain time, before anything stops."""
        if self.stack.desired_state == Stack.Desired.RUNNING or not waves:
            return
        if self.routed_services() and self.membership():
            self.tell_frontier("stop")
            time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)

    def check_time(self) -> None:
        renew(self.stack.pk, self.token)
        if Stack.objects.filter(pk=self.stack.pk, cancel_requested=True).exists():
            raise CancelledError(f"The {self.stack.operation or 'operation'} was cancelled.")
        if timezone.now() > self.deadline:
            raise CancelledError("The operation did not finish before its deadline.")

    def apply(self, wave: Wave) -> None:
        self.check_time()
        groups = wave.by_service()
        needs = {name: self.needs(name, wave) for name in groups}
        # Services of the wave waiting on different dependencies each start once their
        # own are met (in their threads); otherwise wait once, then start them all.
        waits = readiness.SharedWaits(self.wait_for) if len(set(needs.values())) > 1 else None
        if waits is None:
            for dependency, condition in wave.wait_for.items():
                self.wait_for(dependency, condition)
        if not groups:
            return
        self.changed = True
        if len(groups) == 1:
            outcomes = [self.run_group(next(iter(groups.values())))]
        else:
            workers = min(8, len(groups))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [(groups[name], needs[name] if waits else (), waits) for name in groups]
                outcomes = list(pool.map(lambda job: self.run_group_in_thread(*job), jobs))
        for outcome in outcomes:
            for action, message, result, data in outcome.events:
                self.event(action, message, outcome=result, data=data)
        errors = list(dict.fromkeys(o.error for o in outcomes if o.error))  # one per cause
        if errors:
            raise EngineError("; ".join(errors), retryable=False)

    def needs(self, service: str, wave: Wave) -> tuple[tuple[str, str], ...]:
        """The wave's waits that `service` itself depends on."""
        spec = self.project.services.get(service) if self.project else None
        own = spec.depends_on if spec else {}
        return tuple(sorted((d, c) for d, c in wave.wait_for.items() if d in own))

    def run_group_in_thread(
        self,
        actions: list[Action],
        needs: tuple[tuple[str, str], ...] = (),
        waits: readiness.SharedWaits | None = None,
    ) -> Outcome:
        try:
            if waits is not None:
                try:
                    for dependency, condition in needs:
                        waits.wait(dependency, condition)
                except (WaitFailedError, CancelledError, EngineError) as exc:
                    return Outcome(error=str(exc))
            return self.run_group(actions)
        finally:
            close_thread_connection()

    def run_group(self, actions: list[Action]) -> Outcome:
        """A service's actions: what goes (drained together), what is created or
        started, then the changes of running containers through the rolling executor."""
        outcome = Outcome()
        replaces = [a for a in actions if isinstance(a, Replace)]
        running = self.stack.desired_state == Stack.Desired.RUNNING
        removes = [a for a in actions if isinstance(a, Remove)] if running else []
        if removes:
            try:
                self.shrink(removes[0].service, [a.id for a in removes], outcome)
            except EngineError as exc:
                outcome.error = _describe(removes[0], exc)
                failed = ("container.remove", outcome.error, Event.Outcome.FAILURE, {})
                outcome.events.append(failed)
                return outcome
        rest = [a for a in actions if a not in replaces and a not in removes]
        self.perform_each(rest, outcome)
        if replaces and not outcome.error:
            try:
                RollingUpdate(self, replaces[0].service, replaces, outcome).execute()
            except (EngineError, WaitFailedError, CancelledError, RolloutFailedError) as exc:
                outcome.error = str(exc)
                if not isinstance(exc, RolloutFailedError):
                    outcome.error = _describe(replaces[0], exc)
                    outcome.events.append(
                        ("container.replace", outcome.error, Event.Outcome.FAILURE, {})
                    )
        return outcome

    def perform_each(self, actions: list[Action], outcome: Outcome) -> None:
        for action in actions:
            try:
                self.perform(action, outcome)
            except (EngineError, WaitFailedError, CancelledError) as exc:
                outcome.error = _describe(action, exc)
                outcome.events.append(
                    (_action_name(action), outcome.error, Event.Outcome.FAILURE, {})
                )
                break

    def perform(self, action: Action, outcome: Outcome) -> None:
        engine = self.engine
        if isinstance(action, EnsureNetwork):
            if action.scope == "stack":
                labels, owner = naming.stack_labels(self.stack), naming.stack_owner(self.stack)
            else:
                labels = naming.environment_labels(self.stack)
                owner = naming.environment_owner(self.stack)
            engine.ensure_network(action.name, labels, owner=owner)
        elif isinstance(action, EnsureVolume):
            # When it was made: the local driver's own CreatedAt follows the data's changes.
            labels = {**naming.stack_labels(self.stack), naming.CREATED_AT: str(int(time.time()))}
            engine.ensure_volume(action.name, labels, owner=self.volume_owner(action.name))
        elif isinstance(action, Pull):
            self.pull(action.image, outcome)
        elif isinstance(action, Create):
            self.create(action.service, action.replica, outcome)
        elif isinstance(action, Start):
            engine.start(action.id)
            outcome.events.append(
                ("container.start", f"Started {action.service}", Event.Outcome.SUCCESS, {})
            )
        elif isinstance(action, Stop):
            engine.stop(action.id, timeout=self.stop_timeout(action.service))
            outcome.events.append(
                ("container.stop", f"Stopped {action.service}", Event.Outcome.SUCCESS, {})
            )
        elif isinstance(action, Remove):
            remove_container(self.host, engine, action.id)
            outcome.events.append(
                (
                    "container.remove",
                    f"Removed a {action.service} container",
                    Event.Outcome.SUCCESS,
                    {"id": action.id[:12]},
                )
            )

    def pull(self, image: str, outcome: Outcome) -> None:
        # The engine's cache is shared by every tenant: the stack tenant's right to the
        # image is checked first (image ids refused, Berth's registry by any spelling
        # pulled with the tenant's credential, other registries always pulled; see
        # apps.registry.deploy). A refusal is an EngineError: nothing is created.
        progress = live.PullProgress(self.stack.pk, image)
        access = authorise_image(self.engine, image, self.stack.tenant.slug, progress)
        if not access.pulled:
            return
        progress.done()
        outcome.events.append(("image.pull", f"Pulled {image}", Event.Outcome.SUCCESS, {}))

    def volume_owner(self, name: str) -> dict[str, str]:
        """Whose labels a volume of this stack must carry: volumes kept under their old
        names (created before installation ids) carry the old labels."""
        if name in (self.stack.legacy_volumes or {}).values():
            return naming.legacy_owner(self.stack)
        return naming.stack_owner(self.stack)

    def siblings(self, service: str) -> dict[str, str]:
        """This stack's own containers that `service` may join or mount from, by service
        name and by engine name -> engine id (first replica, running ones first)."""
        if self.project is None or not naming.referenced_services(self.project.services[service]):
            return {}
        found: dict[str, str] = {}
        listed = self.engine.list_managed(self.filters())
        ranked = sorted(
            listed,
            key=lambda c: (c.state != "running", c.labels.get(naming.REPLICA) != "1", -c.created),
        )
        for container in ranked:
            name = container.labels.get(naming.SERVICE, "")
            if name and name != service:
                found.setdefault(name, container.id)
                found.setdefault(container.name, container.id)
        return found

    def create(self, service: str, replica: int, outcome: Outcome, suffix: bool = False) -> str:
        revision = self.revision.number if self.revision else 0
        name = naming.container_name(self.stack, service, replica, suffix=suffix)
        request = naming.container_request(
            self.stack,
            self.spec,
            self.project,
            service,
            replica,
            name,
            revision,
            siblings=self.siblings(service),
            store=self.store,
        )
        try:
            container_id = self.engine.create_container(request)
        except EngineError as exc:
            if exc.status != 409 or suffix:
                raise
            return self.create(service, replica, outcome, suffix=True)  # the name is taken
        self.engine.start(container_id)
        outcome.events.append(
            ("container.create", f"Started {name}", Event.Outcome.SUCCESS, {"replica": replica})
        )
        return container_id

    def stop_timeout(self, service: str) -> int:
        """The service's grace period, capped: a revision stored before the cap may
        still ask for days."""
        spec = self.project.services.get(service) if self.project else None
        # 0s is a choice (kill at once), not "unset": only a missing value means Docker's 10.
        grace = spec.stop_grace_period if spec and spec.stop_grace_period is not None else 10
        return min(int(grace), max_stop_grace())

    def restart_all(self) -> None:
        """The "restart" operation: each running container once, dependencies first.
        A routed service's containers are replaced batch by batch instead (a restarted
        container would drop the requests the frontier still sends it)."""
        listed = self.observe()
        self.seen.update({c.id: c for c in observed_from(listed)})
        desired = self.desired()
        for wave in plan(desired, []):
            # A service whose canary runs is left alone, restart included.
            services = {a.service for a in wave.actions if isinstance(a, Create)} - self.held
            self.check_time()
            for dependency, condition in wave.wait_for.items():
                self.wait_for(dependency, condition)
            for container in listed:
                service = container.labels.get(naming.SERVICE, "")
                if service in services - self.routed_services() and container.state == "running":
                    self.engine.restart(container.id, timeout=self.stop_timeout(service))
            for service in sorted(services & self.routed_services()):
                self.restart_routed(desired.services[service], listed)
        self.event("stack.restart", "Restarted every container")

    def restart_routed(self, service: DesiredService, listed: list[ManagedContainer]) -> None:
        running = [c for c in observed_from(listed) if c.service == service.name]
        replaces = [
            Replace(
                service=service.name, replica=c.replica, old_id=c.id, order=service.update_order
            )
            for c in running
            if c.state == "running"
        ]
        if not replaces:
            return
        outcome = Outcome()
        RollingUpdate(self, service.name, replaces, outcome, restart=True).execute()
        for action, message, result, data in outcome.events:
            self.event(action, message, outcome=result, data=data)

    # waiting -----------------------------------------------------------------------------

    def wait_for(self, service: str, condition: str) -> None:
        """Block until every replica of `service` meets `condition`; fail fast when it
        cannot (unhealthy, exited); bounded by the deadline and cancellable."""
        replicas = self.project.services[service].replicas if self.project else 0
        waiter = probes.Waiter(self.spec, service, naming.network_name(self.stack))
        # Docker's health, or "healthy" once Berth's own run of the test passed
        # (readiness.py); a berth.yml http/tcp check is Berth's probe either way.
        early = None if waiter.active else readiness.EarlyProbe(self.engine)
        judge = waiter.health if early is None else early.health
        fallback = POLL_SECONDS if waiter.active else readiness.FALLBACK_POLL
        events = None  # subscribed only when there is something to wait for
        try:
            while True:
                listed = self.engine.list_managed(self.filters(service=service))
                verdict = _condition_met(listed, replicas, condition, service, judge)
                if verdict is True:
                    return
                if isinstance(verdict, str):
                    raise WaitFailedError(verdict)
                self.check_time()
                if events is None:  # an event from now on is not missed: look again first
                    events = readiness.watch(self.engine, self.filters(service=service))
                    continue
                readiness.pause(events, early, fallback)
        finally:
            if events is not None:
                events.close()

    def wait_container(self, container_id: str, service: str) -> None:
        """Until the new container is healthy: Docker's check, or Berth's own probe for a
        service with an http/tcp health_check (which Docker does not run)."""
        waiter = probes.Waiter(self.spec, service, naming.network_name(self.stack))
        while True:
            status = self.engine.inspect_container(container_id)
            health = status.health
            if waiter.active and status.state == "running":
                health = waiter.health_of(self.engine, self.filters(service=service), container_id)
            if status.state == "running" and health in ("", "healthy"):
                return
            if status.state in ("exited", "dead") or health == "unhealthy":
                why = waiter.reason(container_id) or status.health_output or status.error
                raise WaitFailedError(
                    f"The new {service} container did not become healthy: {why or status.state}"
                )
            if timezone.now() > self.deadline:
                raise CancelledError("The operation did not finish before its deadline.")
            time.sleep(POLL_SECONDS)

    def wait_until_settled(self) -> None:
        """After changes, wait while health checks are still starting (bounded)."""
        if self.stack.desired_state != Stack.Desired.RUNNING:
            return
        listed = self.observe()
        if not any(c.health == "starting" for c in listed):
            return  # no engine events subscribed for nothing
        with readiness.watch(self.engine, self.filters()) as events:
            while True:
                before = self.membership()
                mirror(self.stack, self.host, listed, self.spec, self.project, self.engine)
                if self.membership() != before:
                    # A routed service healthy while another still starts serves at once;
                    # finish() would see these rows unchanged and never tell the frontier.
                    self.tell_frontier("healthy")
                self.check_time()
                events.wait(readiness.FALLBACK_POLL)  # woken by the health_status event
                listed = self.observe()
                if not any(c.health == "starting" for c in listed):
                    return

    # recording ---------------------------------------------------------------------------

    def event(
        self,
        action: str,
        message: str,
        *,
        outcome: str = Event.Outcome.SUCCESS,
        data: dict | None = None,
    ) -> None:
        record_event(
            action,
            tenant=self.stack.tenant,
            obj=self.stack,
            outcome=outcome,
            message=message,
            data={"stack": self.stack.pk, **(data or {})},
        )

    def finish(self, listed: list[ManagedContainer]) -> None:
        stack = self.stack
        if stack.desired_state == Stack.Desired.REMOVED:
            if not listed and not self.failure:
                self.remove_stack()
            elif self.failure:
                Stack.objects.filter(pk=stack.pk).update(
                    state=Stack.State.FAILED, state_reason=self.failure
                )
            return
        before = self.membership()
        health = mirror(
            stack, self.host, listed, self.spec, self.project, self.engine, end_of_pass=True
        )
        health = self.canary_health(health, self.held)
        if self.membership() != before or (self.changed and before):
            # After a pass that changed containers the frontier is told even when these
            # rows were already written during the pass (a no-op when it serves them).
            self.tell_frontier("reconcile")
        state, reason = stack_state(stack, health, self.failure)
        fields: dict[str, Any] = {
            "state": state,
            "state_reason": reason,
            "last_reconciled_at": timezone.now(),
        }
        settled = state in (Stack.State.HEALTHY, Stack.State.STOPPED) or self.failure
        if stack.operation and (settled or timezone.now() > self.deadline):
            fields.update(operation="", operation_deadline=None, cancel_requested=False)
            if not self.failure:
                self.event(f"stack.{stack.operation}", f"{stack.name} is {state}")
        Stack.objects.filter(pk=stack.pk).update(**fields)
        for key, value in fields.items():
            setattr(stack, key, value)

    def remove_stack(self) -> None:
        stack = self.stack
        self.engine.remove_network(
            naming.stack_network_name(stack), owner=naming.stack_owner(stack)
        )
        if stack.remove_volumes and self.project is not None:
            for name in naming.stack_volumes(stack, self.project).values():
                self.engine.remove_volume(name, owner=self.volume_owner(name))
        kept = "" if stack.remove_volumes else " (volumes kept)"
        self.event("stack.removed", f"Removed {stack.name}{kept}")
        Stack.objects.filter(pk=stack.pk).delete()


def _condition_met(
    listed: list[ManagedContainer],
    replicas: int,
    condition: str,
    service: str,
    health_of: Callable[[ManagedContainer], str] | None = None,
) -> bool | str | None:
    """True when met, a reason (str) when it never will be, None to keep waiting.
    `health_of` judges a container (Berth's probe); by default the engine's health."""
    health_of = health_of or (lambda c: c.health)
    if replicas == 0:
        return True
    if condition == "service_completed_successfully":
        done = [c for c in listed if c.state == "exited"]
        failed = [c for c in done if c.exit_code not in (0, None)]
        if failed:
            return f"{service} exited with code {failed[0].exit_code}"
        return True if len(done) >= replicas else None
    running = [c for c in listed if c.state == "running"]
    judged = {c.id: health_of(c) for c in running}
    if any(h == "unhealthy" for h in judged.values()):
        return f"{service} is unhealthy, so the services that depend on it were not started"
    if any(c.state in ("exited", "dead") for c in listed) and len(running) < replicas:
        return f"{service} exited before becoming healthy"
    healthy = [c for c in running if judged[c.id] in ("healthy", "")]
    return True if len(healthy) >= replicas else None


def _action_name(action: Action) -> str:
    return {
        "Pull": "image.pull",
        "Create": "container.create",
        "Replace": "container.replace",
        "Start": "container.start",
        "Stop": "container.stop",
        "Remove": "container.remove",
        "EnsureNetwork": "network.create",
        "EnsureVolume": "volume.create",
    }.get(type(action).__name__, "stack.reconcile")


def _describe(action: Action, exc: Exception) -> str:
    what = {
        "Pull": lambda a: f"Pulling {a.image}",
        "Create": lambda a: f"Creating {a.service} #{a.replica}",
        "Replace": lambda a: f"Updating {a.service} #{a.replica}",
        "Start": lambda a: f"Starting {a.service}",
        "Stop": lambda a: f"Stopping {a.service}",
        "Remove": lambda a: f"Removing a {a.service} container",
        "EnsureNetwork": lambda a: f"Creating network {a.name}",
        "EnsureVolume": lambda a: f"Creating volume {a.name}",
    }.get(type(action).__name__, lambda a: "Reconciling")
    return f"{what(action)} failed: {exc}"
