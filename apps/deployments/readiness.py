"""When a dependency is ready enough to start what depends on it: sooner than Docker says.

Engine 20.10 runs a container's first health probe one `interval` after the start, so a
`service_healthy` dependency made its dependents wait a whole interval (2 s in the
guestbook) even when it was ready at once. Right after the start, Berth runs the
container's own health test itself, through exec (the test the engine would run, as the
container's user), with a short back-off (0.1 s, then doubling): as soon as one run passes, the
dependents start. Only the start order uses this. Docker's status stays the truth for
the health shown to users and for the stack's state (the mirror reads the engine), and it
decides when Berth's runs do not pass: the back-off stops once its delay reaches the
check's interval, and the wait goes on with Docker's verdict (healthy, or unhealthy:
the dependents are not started).

Waiting reacts to the engine's own events (`start`, `die`, `destroy`, `health_status`)
instead of polling; a list call follows each event, and one every `FALLBACK_POLL` in
case an event was missed or the stream broke.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from apps.hosts.engine import EngineDriver, EngineError, HealthTest, ManagedContainer
from apps.hosts.engine.driver import ContainerEvents

log = logging.getLogger(__name__)
# Seconds before Berth's second run of a test that did not pass; each pause doubles
# (0.1, 0.2, 0.4 ...) until it would reach the check's interval or MAX_RUNS were made,
# then only Docker's status counts.
FIRST_DELAY = 0.1
MAX_RUNS = 8
# A run that hangs is abandoned after the check's timeout, at most this long.
MAX_RUN_SECONDS = 5.0
# With a live event stream, the wait still looks at the engine at least this often.
FALLBACK_POLL = 1.0


@dataclass
class EarlyState:
    """Berth's runs of one container's test: how many, when the next is due, whether
    one passed (then the container is ready for start ordering), what the last said."""

    test: HealthTest | None
    runs: int = 0
    next_at: float = 0.0
    passed: bool = False
    finished: bool = False  # no more runs: passed, no test, or the back-off ran out
    last: str = ""


def next_delay(runs: int, interval: float) -> float | None:
    """The pause after the `runs`-th failed run; None once it would reach `interval`
    (Docker's own probes are then as frequent as Berth's)."""
    if runs >= MAX_RUNS:
        return None
    delay = FIRST_DELAY * 2 ** (runs - 1) if runs else 0.0
    return delay if delay < interval else None


class EarlyProbe:
    """A dependency's containers judged for start ordering: Docker's health, except that
    "starting" becomes "healthy" once Berth's own run of the test passed."""

    def __init__(self, engine: EngineDriver, clock=time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.states: dict[str, EarlyState] = {}

    def health(self, container: ManagedContainer) -> str:
        """What the wait for `service_healthy` should see for `container`."""
        if container.state != "running" or container.health != "starting":
            return container.health
        state = self.states.get(container.id)
        if state is None:
            state = self.states[container.id] = EarlyState(self._test_of(container.id))
            state.finished = state.test is None
        if state.passed:
            return "healthy"
        if not state.finished and self.clock() >= state.next_at:
            self._run(container.id, state)
        return "healthy" if state.passed else "starting"

    def next_in(self) -> float | None:
        """Seconds until the next run is due (0 when overdue); None when none is planned."""
        pending = [s.next_at for s in self.states.values() if not s.finished]
        if not pending:
            return None
        return max(0.0, min(pending) - self.clock())

    def _test_of(self, container_id: str) -> HealthTest | None:
        try:
            return self.engine.health_test(container_id)
        except EngineError as exc:  # gone already: Docker's status will say so
            log.info("no early health run for %s: %s", container_id[:12], exc)
            return None

    def _run(self, container_id: str, state: EarlyState) -> None:
        test = state.test
        assert test is not None
        try:
            result = self.engine.run_check(
                container_id, test.argv, min(test.timeout, MAX_RUN_SECONDS)
            )
            state.passed, state.last = result.passed, result.output
            timed_out = result.exit_code is None
        except EngineError as exc:  # not running any more, or the engine hiccupped
            state.last, timed_out = str(exc), False
        state.runs += 1
        log.debug("early run %d of %s: %s", state.runs, container_id[:12], state.last)
        # A run past its timeout may still be running in the container (exec has no
        # kill): never start another beside it, let Docker's probes decide.
        delay = None if state.passed or timed_out else next_delay(state.runs, test.interval)
        if delay is None:
            state.finished = True
        else:
            state.next_at = self.clock() + delay


def pause(
    events: ContainerEvents | _Sleeper, early: EarlyProbe | None, fallback: float = FALLBACK_POLL
) -> None:
    """Until an engine event, the next early run, or `fallback` seconds: whichever first."""
    timeout = fallback
    due = early.next_in() if early is not None else None
    if due is not None:
        timeout = min(timeout, due)
    if timeout > 0:
        events.wait(timeout)


class _Sleeper:
    """A watch that never hears anything: waits sleep (the engine refused the stream)."""

    def wait(self, timeout: float) -> bool:
        time.sleep(max(timeout, 0))
        return False

    def close(self) -> None:
        pass

    def __enter__(self) -> _Sleeper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def watch(engine: EngineDriver, labels: dict[str, str]) -> ContainerEvents | _Sleeper:
    """The engine's container events for `labels`, or, when it will not stream them, a
    watch that just sleeps (the caller then polls at its old pace)."""
    try:
        return engine.watch(labels)
    except EngineError as exc:
        log.info("no engine events, polling instead: %s", exc)
        return _Sleeper()


class SharedWaits:
    """Waits for dependencies shared by the threads of one wave: each (service,
    condition) is waited for once, by the first thread that needs it; the others block on
    its result (or its error), so no dependency is listed and probed twice at once."""

    def __init__(self, wait_for: Callable[[str, str], None]) -> None:
        self.wait_for = wait_for
        self.lock = threading.Lock()
        self.results: dict[tuple[str, str], Future] = {}

    def wait(self, service: str, condition: str) -> None:
        with self.lock:
            result = self.results.get((service, condition))
            mine = result is None
            if result is None:
                result = self.results[(service, condition)] = Future()
        if not mine:
            result.result()
            return
        try:
            self.wait_for(service, condition)
        except BaseException as exc:
            result.set_exception(exc)
            raise
        result.set_result(None)
