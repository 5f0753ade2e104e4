"""The rolling executor: how the reconciler moves a running service to a new revision.

`RollingUpdate` runs the Replace actions of one service: batches of `batch_size`,
start-first or stop-first, each new batch healthy before the old one is drained (the
frontier's drain protocol), a pause of `interval` between batches, and an automatic
rollback (or a pause) when a batch does not become healthy within `monitor`; a canary
stops after its first batch and waits for a person (rollout.py: weight, promote, abort).

Crash safety comes from the planner and the Rollout row: containers carry their revision
and spec hash, a replace interrupted half-way is resumed (`Replace.adopt`), and the row
of the service's active rollout is reused by the next pass.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.deployments import probes
from apps.deployments.containers import network_name
from apps.deployments.mirror import mirror
from apps.deployments.models import Container, Revision, Rollout, Route, Service, Stack
from apps.deployments.planner import Action, Replace, Wave, batches
from apps.deployments.signals import frontier_changed, remove_container
from apps.deployments.spec import routes_of, upgrade_of
from apps.hosts.engine import EngineError

if TYPE_CHECKING:  # the reconciler imports this module
    from apps.deployments.reconciler import Outcome, Run

POLL_SECONDS = 0.1


class RolloutFailedError(Exception):
    """A rollout was rolled back or paused: the pass stops, with this message."""


class BatchFailedError(Exception):
    """A new batch did not become healthy: its containers are removed, then the rollout
    is rolled back or paused; the message says why."""


def _finish(rollout: Rollout, state: str, message: str = "") -> None:
    rollout.state = state
    rollout.message = message[:2000]
    rollout.finished_at = timezone.now()
    rollout.save(update_fields=["state", "message", "finished_at", "updated_at"])


def _from_revision(run: Run, replaces: list[Replace]) -> int:
    """The revision most of the running old containers run (labels, not the database)."""
    counts = Counter(
        run.seen[r.old_id].revision
        for r in replaces
        if r.old_id in run.seen and run.seen[r.old_id].state == "running"
    )
    return counts.most_common(1)[0][0] if counts else 0


class RollingUpdate:
    """The Replace actions of one service in one reconcile pass (runs in the service's
    worker thread; `outcome` collects its events for the run to record)."""

    def __init__(
        self,
        run: Run,
        service: str,
        replaces: list[Replace],
        outcome: Outcome,
        *,
        restart: bool = False,
    ):
        self.restart = restart  # the restart operation: same revision, never a canary
        self.run = run
        self.service = service
        self.replaces = replaces
        self.outcome = outcome
        self.settings = run.upgrade(service)
        self.to_revision = run.revision.number if run.revision else 0

    # the row -----------------------------------------------------------------------------

    def rollout(self) -> Rollout | None:
        """The service's active Rollout for this revision (reused after a crash), a new
        one, or None when nothing running is changed (a dead container's repair)."""
        running = [r for r in self.replaces if r.old_id in self.run.seen]
        running = [r for r in running if self.run.seen[r.old_id].state == "running"]
        if not running and not any(r.adopt for r in self.replaces):
            return None
        stack = self.run.stack
        active = Rollout.objects.filter(stack=stack, service=self.service, state__in=Rollout.ACTIVE)
        current = active.filter(to_revision=self.to_revision).first()
        aborting = active.filter(state=Rollout.State.ABORTING).first()
        if current is not None or aborting is not None:
            return current or aborting
        for stale in active:
            _finish(stale, Rollout.State.FAILED, f"superseded by r{self.to_revision}")
        canary = (
            self.settings["strategy"] == "canary"
            and not self.restart
            and self.run.has_hostname_route(self.service)
        )
        rollout = Rollout.objects.create(
            stack=stack,
            service=self.service,
            strategy=Rollout.Strategy.CANARY if canary else Rollout.Strategy.ROLLING,
            from_revision=_from_revision(self.run, self.replaces),
            to_revision=self.to_revision,
        )
        self.event(
            "rollout.start",
            f"{self.service}: {rollout.strategy} update r{rollout.from_revision} → "
            f"r{rollout.to_revision}",
        )
        return rollout

    # the steps -----------------------------------------------------------------------------

    def execute(self) -> None:
        """Every batch (a canary: the first only), then the rollout's ending."""
        rollout = self.rollout()
        canary = (
            rollout is not None
            and rollout.strategy == Rollout.Strategy.CANARY
            and rollout.state == Rollout.State.RUNNING
        )
        size = int(self.settings["batch_size"])
        planned = batches(self.replaces, size)
        if canary:
            planned = batches(self.replaces, size or 1)[:1]
        for index, batch in enumerate(planned):
            try:
                if index:
                    self.pause()  # another service's rollback stops this one too
                self.batch(batch, keep_old=canary)
            except BatchFailedError as exc:
                self.failed(rollout, str(exc))
            if rollout is not None and rollout.state == Rollout.State.PROMOTING:
                self.rebalance(rollout)
        if rollout is None:
            return
        if canary:
            self.canary_started(rollout)
        elif rollout.state == Rollout.State.ABORTING:
            _finish(rollout, Rollout.State.ABORTED, rollout.message)
            self.event("rollout.aborted", f"{self.service} is back on r{self.to_revision}")
        else:
            _finish(rollout, Rollout.State.DONE)
            self.event("rollout.done", f"{self.service} runs r{self.to_revision}")

    def rebalance(self, rollout: Rollout) -> None:
        """While a canary is promoted the frontier still splits by revision: keep each
        container's share even (the new revision's weight follows its share of them)."""
        rows = Container.objects.filter(
            stack=self.run.stack, service__name=self.service, state="running", draining=False
        )
        new = rows.filter(revision=rollout.to_revision).count()
        total = rows.count()
        if not total or not new:
            return
        rollout.canary_weight = max(1, min(99, round(100 * new / total)))
        rollout.save(update_fields=["canary_weight", "updated_at"])
        self.run.tell_frontier("canary weights")

    def pause(self) -> None:
        """`interval` between batches, renewing the lease and honouring a cancel."""
        end = time.monotonic() + float(self.settings["interval"])
        while True:
            self.run.check_time()
            if self.run.rolled_back:
                raise BatchFailedError("another service of the stack was rolled back")
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 1.0))

    def batch(self, batch: tuple[Replace, ...], *, keep_old: bool = False) -> None:
        """One batch: the new containers healthy and in the frontier, the old ones drained,
        stopped and removed (in the service's order)."""
        run = self.run
        old = [r.old_id for r in batch]
        start_first = keep_old or batch[0].order == "start-first"
        if not start_first:
            run.retire(self.service, old, self.outcome)
        fresh = [
            r.adopt or run.create(self.service, r.replica, self.outcome, suffix=start_first)
            for r in batch
        ]
        self.wait_healthy(fresh)
        if keep_old:
            return  # a canary joins with its weight (canary_started)
        run.join(self.service)
        if start_first:
            run.retire(self.service, old, self.outcome)

    def wait_healthy(self, ids: list[str]) -> None:
        """Every container running and healthy (or running, without a check), within
        `monitor` seconds and the operation's deadline; BatchFailedError otherwise."""
        monitor = float(self.settings["monitor"])
        end = time.monotonic() + monitor
        waiting = list(ids)
        # Docker's check, or Berth's own probe for an http/tcp health_check.
        waiter = probes.Waiter(self.run.spec, self.service, network_name(self.run.stack))
        while waiting:
            for container_id in list(waiting):
                status = self.run.engine.inspect_container(container_id)
                health = status.health
                if waiter.active and status.state == "running":
                    filters = self.run.filters(service=self.service)
                    health = waiter.health_of(self.run.engine, filters, container_id)
                if status.state == "running" and health in ("", "healthy"):
                    waiting.remove(container_id)
                elif status.state in ("exited", "dead", "restarting") or health == "unhealthy":
                    self.discard(ids)
                    detail = (
                        waiter.reason(container_id)
                        or status.health_output
                        or status.error
                        or status.state
                    )
                    raise BatchFailedError(
                        f"a new {self.service} container did not become healthy: "
                        f"{detail.strip()[:300]}"
                    )
            if not waiting:
                return
            if time.monotonic() > end:
                self.discard(ids)
                raise BatchFailedError(
                    f"the new {self.service} containers were not healthy within {monitor:g} s"
                )
            self.run.check_time()
            time.sleep(POLL_SECONDS)

    def discard(self, ids: list[str]) -> None:
        """The failed batch goes (drained first: none of it ever joined the frontier)."""
        self.run.retire(self.service, ids, self.outcome)

    # endings ---------------------------------------------------------------------------------

    def failed(self, rollout: Rollout | None, reason: str) -> None:
        """Roll the stack back to the revision the old containers run, or pause here."""
        if rollout is None:
            raise RolloutFailedError(reason)
        back = rollout.from_revision
        rollback = self.settings["failure_action"] == "rollback" and back != self.to_revision
        if rollback and back and self.run.roll_back_to(back):
            message = f"{self.service}: {reason}; rolled back to r{back}"
            _finish(rollout, Rollout.State.ROLLED_BACK, message)
            self.event("rollout.rolled_back", message, failed=True)
        else:
            message = f"{self.service}: {reason}; the upgrade is paused"
            _finish(rollout, Rollout.State.FAILED, message)
            self.event("rollout.paused", message, failed=True)
        raise RolloutFailedError(message)

    def canary_started(self, rollout: Rollout) -> None:
        """The first batch runs beside the old containers: weights in the frontier."""
        rollout.state = Rollout.State.CANARY
        rollout.canary_weight = int(self.settings["canary_weight"])
        rollout.save(update_fields=["state", "canary_weight", "updated_at"])
        self.run.join(self.service)
        self.event(
            "rollout.canary",
            f"{self.service}: r{self.to_revision} takes {rollout.canary_weight}% of the traffic",
        )

    def event(self, action: str, message: str, *, failed: bool = False) -> None:
        """Recorded by the run once the service's thread is done (Outcome.events)."""
        result = Event.Outcome.FAILURE if failed else Event.Outcome.SUCCESS
        self.outcome.events.append((action, message, result, {"service": self.service}))


# --- the run's steps that touch traffic and rollout rows ---------------------------------------


class RolloutSteps:
    """Mixed into the reconciler's Run: routes, the drain protocol, joining the frontier,
    the rollouts that hold a service (a canary, a pause) and their endings.

    Expects the Run's attributes: stack, host, engine, spec, project, revision, seen
    (engine id -> ObservedContainer of this pass), rolled_back, traffic_lock.
    """

    stack: Stack
    spec: dict
    _routed: set[str] | None = None

    def routed_services(self) -> set[str]:
        """Services with a route: the template's (spec) and people's (Route rows)."""
        if self._routed is None:
            names = set(self.project.services) if self.project else set()
            routed = {name for name in names if routes_of(self.spec, name)}
            rows = getattr(self.stack, "route_rows", None)  # prefetched by the host pass
            if rows is None:
                rows = Route.objects.filter(stack=self.stack).select_related("service")
            self._routed = routed | {route.service.name for route in rows}
        return self._routed

    def has_hostname_route(self, service: str) -> bool:
        """A canary needs one: its weight is a share of a route's traffic."""
        return service in self.routed_services()

    def upgrade(self, service: str) -> dict[str, Any]:
        """The service's upgrade settings in the revision being rolled out."""
        return upgrade_of(self.spec, self.project, service)

    def tell_frontier(self, reason: str) -> None:
        """Synchronous: when it returns the frontier serves the new membership."""
        frontier_changed.send_robust(sender=Stack, stack_id=self.stack.pk, reason=reason)

    def join(self, service: str) -> None:
        """New healthy containers into the rows, then into the frontier."""
        with self.traffic_lock:
            mirror(self.stack, self.host, self.observe(), self.spec, self.project, self.engine)
            if service in self.routed_services():
                self.tell_frontier("join")

    def retire(self, service: str, ids: list[str], outcome: Any) -> None:
        """The drain protocol, then stop with the service's grace period and remove;
        the containers of one call are stopped side by side."""
        ids = [i for i in ids if i]
        if not ids:
            return
        if service in self.routed_services():
            Container.objects.filter(stack=self.stack, engine_id__in=ids).update(draining=True)
            self.tell_frontier("drain")
            time.sleep(settings.BERTH_FRONTIER_DRAIN_SECONDS)
        grace = self.stop_timeout(service)

        def stop(container_id: str) -> None:
            seen = self.seen.get(container_id)
            if seen is None or seen.state in ("running", "restarting", "paused"):
                # Gone, or already stopped: removed below either way.
                with contextlib.suppress(EngineError):
                    self.engine.stop(container_id, timeout=grace)
            remove_container(self.host, self.engine, container_id)

        if len(ids) == 1:
            stop(ids[0])
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
                list(pool.map(stop, ids))
        for container_id in ids:
            outcome.events.append(
                (
                    "container.remove",
                    f"Removed a {service} container",
                    Event.Outcome.SUCCESS,
                    {"id": container_id[:12]},
                )
            )

    def shrink(self, service: str, ids: list[str], outcome: Any) -> None:
        """Containers that go while the service keeps running (a scale down, a duplicate,
        the old side of a promoted canary): drained together, and a scale down recorded
        as a rollout of its own."""
        rollout = self.scale_down_rollout(service, ids)
        self.retire(service, ids, outcome)
        if rollout is not None:
            _finish(rollout, Rollout.State.DONE, rollout.message)

    def scale_down_rollout(self, service: str, ids: list[str]) -> Rollout | None:
        """A Rollout row when running replicas above the desired count go."""
        spec = self.project.services.get(service) if self.project else None
        removed = [self.seen[i] for i in ids if i in self.seen]
        shrinking = [
            c for c in removed if spec and c.replica > spec.replicas and c.state == "running"
        ]
        if not shrinking:
            return None
        active = Rollout.objects.filter(stack=self.stack, service=service, state__in=Rollout.ACTIVE)
        if active.exists():
            return None  # its own rollout (a promote, an abort) covers it
        return Rollout.objects.create(
            stack=self.stack,
            service=service,
            strategy=Rollout.Strategy.ROLLING,
            from_revision=max(c.revision for c in shrinking),
            to_revision=self.revision.number if self.revision else 0,
            message=f"scale down by {len(shrinking)}",
        )

    def roll_back_to(self, number: int) -> bool:
        """The stack's current revision back to `number` (what the old containers run),
        with the template version, answers and compose it was made from."""
        revision = Revision.objects.filter(stack=self.stack, number=number).first()
        if revision is None:
            return False
        Stack.objects.filter(pk=self.stack.pk).update(
            current_revision=revision,
            template_version=revision.template_version,
            answers=revision.answers,
            compose=revision.compose,
        )
        self.rolled_back = True
        return True

    # which services a pass leaves alone ---------------------------------------------------------

    def active_rollouts(self) -> list[Rollout]:
        """The stack's active rollouts as the pass began (prefetched by the host pass)."""
        found = getattr(self.stack, "active_rollouts", None)
        if found is None:
            found = list(Rollout.objects.filter(stack=self.stack, state__in=Rollout.ACTIVE))
            self.stack.active_rollouts = found
        return found

    def holds(self) -> set[str]:
        """The services whose canary runs (left alone), after ending the active rollouts
        a newer revision superseded."""
        number = self.revision.number if self.revision else 0
        superseded = (Rollout.State.RUNNING, Rollout.State.CANARY, Rollout.State.PROMOTING)
        held = set()
        stopping = self.stack.desired_state != Stack.Desired.RUNNING
        for rollout in self.active_rollouts():
            if stopping:
                # Stopping or removing the stack ends its canaries: nothing is held, or
                # the stop would leave them running and a removal would never finish.
                _finish(rollout, Rollout.State.ABORTED, f"the stack is {self.stack.desired_state}")
            elif rollout.state in superseded and rollout.to_revision != number:
                _finish(rollout, Rollout.State.FAILED, f"superseded by r{number}")
            elif rollout.state == Rollout.State.CANARY:
                held.add(rollout.service)
        return held

    def paused(self, services: set[str]) -> set[str]:
        """Of `services`, those whose last rollout to this revision failed with
        failure_action pause: no replace until the next change."""
        number = self.revision.number if self.revision else 0
        if not services:
            return set()
        rows = Rollout.objects.filter(stack=self.stack, service__in=services)
        last: dict[str, Rollout] = {}
        for rollout in rows.order_by("started_at", "pk"):
            last[rollout.service] = rollout
        return {
            name
            for name, rollout in last.items()
            if rollout.state == Rollout.State.FAILED and rollout.to_revision == number
        }

    def held_back(self, waves: list[Wave], held: set[str]) -> list[Wave]:
        """The plan without the actions of a service whose canary runs, and without the
        replaces of a service whose upgrade is paused."""
        replacing = {a.service for w in waves for a in w.actions if isinstance(a, Replace)}
        paused = self.paused(replacing - held)

        def kept(action: Action) -> bool:
            if action.service in held:
                return False
            return not (isinstance(action, Replace) and action.service in paused)

        result = [Wave(tuple(a for a in w.actions if kept(a)), w.wait_for) for w in waves]
        return [w for w in result if w.actions]

    def settle_rollouts(self) -> None:
        """After a pass that converged: promoted and rolling rollouts to this revision are
        done, aborted ones are over (read again: the pass may have ended some itself)."""
        known = [r.pk for r in self.active_rollouts()]
        if not known:
            return
        number = self.revision.number if self.revision else 0
        for rollout in Rollout.objects.filter(pk__in=known, state__in=Rollout.ACTIVE):
            if rollout.state == Rollout.State.ABORTING:
                state = Rollout.State.ABORTED
            elif rollout.to_revision == number and rollout.state != Rollout.State.CANARY:
                state = Rollout.State.DONE
            else:
                continue
            _finish(rollout, state, rollout.message)
            record_event(
                f"rollout.{state}",
                tenant=self.stack.tenant,
                obj=self.stack,
                message=f"{rollout.service}: rollout r{rollout.from_revision} → "
                f"r{rollout.to_revision} {rollout.get_state_display().lower()}",
                data={"stack": self.stack.pk, "rollout": rollout.pk},
            )

    def canary_health(self, health: dict[str, tuple[str, str]], held: set[str]) -> dict:
        """A service whose canary runs has old and new containers, all healthy: healthy."""
        for service in held:
            rows = Container.objects.filter(stack=self.stack, service__name=service)
            states = list(rows.values_list("state", "health"))
            if states and all(s == "running" and h in ("", "healthy") for s, h in states):
                reason = "canary running"
                health[service] = ("healthy", reason)
                Service.objects.filter(stack=self.stack, name=service).update(
                    health="healthy", health_reason=reason
                )
        return health

    def membership(self) -> tuple:
        """What the frontier would serve of this stack (routed services' rows)."""
        routed = self.routed_services()
        if not routed:
            return ()
        rows = Container.objects.filter(stack=self.stack, service__name__in=routed)
        fields = ("engine_id", "state", "health", "draining", "address")
        return tuple(rows.order_by("engine_id").values_list(*fields))


def close_thread_connection() -> None:
    """A worker thread's own database connection, closed when its group is done."""
    connection.close()
