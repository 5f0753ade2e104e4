"""The pure planner: desired stack + observed containers -> ordered waves of actions.

No database and no Docker here, so every rule of convergence can be tested with plain
data (and with hypothesis: applying a plan then planning again gives nothing to do).
The reconciler observes, calls `plan`, and executes the waves in order; the actions of
one wave that belong to different services may run in parallel, the actions of one
service run in the order given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.compose.graph import start_levels

RUNNING = "running"
STOPPED = "stopped"
REMOVED = "removed"
_ACTIVE = frozenset({"running", "restarting", "paused"})
_STARTABLE = frozenset({"exited", "created"})


@dataclass(frozen=True)
class DesiredService:
    name: str
    hash: str
    image: str
    replicas: int = 1
    depends_on: dict[str, str] = field(default_factory=dict)  # dependency -> condition
    update_order: str = "stop-first"
    batch_size: int = 1  # running containers replaced at a time; 0: all at once


@dataclass(frozen=True)
class DesiredStack:
    services: dict[str, DesiredService]
    state: str = RUNNING
    network: str = ""
    stack_network: str = ""
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedContainer:
    """A container of the stack as the engine lists it, plus `user_stopped` from the DB."""

    id: str
    service: str
    replica: int
    hash: str
    state: str
    health: str = ""
    created: float = 0.0
    revision: int = 0
    user_stopped: bool = False


@dataclass(frozen=True)
class Action:
    service: str = ""


@dataclass(frozen=True)
class EnsureNetwork(Action):
    name: str = ""
    scope: str = "environment"  # or "stack": removed with the stack


@dataclass(frozen=True)
class EnsureVolume(Action):
    name: str = ""


@dataclass(frozen=True)
class Pull(Action):
    image: str = ""


@dataclass(frozen=True)
class Create(Action):
    """Create and start replica `replica` of `service` with the desired spec."""

    replica: int = 1


@dataclass(frozen=True)
class Replace(Action):
    """Roll one replica to the desired spec: `start-first` creates the new container and
    waits for it before removing `old_id`; `stop-first` removes it first.

    `adopt` names a container of the desired spec already started for this replica (a
    pass that stopped half-way): it is waited for instead of creating another.
    """

    replica: int = 1
    old_id: str = ""
    order: str = "stop-first"
    adopt: str = ""


@dataclass(frozen=True)
class Start(Action):
    id: str = ""


@dataclass(frozen=True)
class Stop(Action):
    id: str = ""


@dataclass(frozen=True)
class Remove(Action):
    id: str = ""


@dataclass(frozen=True)
class Wave:
    """Actions to run together. `wait_for` maps a dependency service to the condition
    (service_healthy, service_completed_successfully) to reach before the wave starts."""

    actions: tuple[Action, ...]
    wait_for: dict[str, str] = field(default_factory=dict)

    def by_service(self) -> dict[str, list[Action]]:
        groups: dict[str, list[Action]] = defaultdict(list)
        for action in self.actions:
            groups[action.service].append(action)
        return dict(groups)


def plan(desired: DesiredStack, observed: Iterable[ObservedContainer]) -> list[Wave]:
    """The waves that bring `observed` to `desired`; empty when already converged."""
    groups: dict[str, dict[int, list[ObservedContainer]]] = defaultdict(lambda: defaultdict(list))
    for container in observed:
        groups[container.service][container.replica].append(container)
    cleanup = _cleanup(desired, groups)
    per_service = {
        name: _service_actions(desired, service, groups.get(name, {}))
        for name, service in desired.services.items()
    }
    waves = [w for w in _level_waves(desired, per_service) if w.actions]
    prep = _prep(desired, per_service) + cleanup
    return ([Wave(tuple(prep))] if prep else []) + waves


def _cleanup(desired: DesiredStack, groups: dict) -> list[Action]:
    """Containers of services no longer in the spec, or of every service when removed."""
    actions: list[Action] = []
    for service, replicas in sorted(groups.items()):
        if desired.state == REMOVED or service not in desired.services:
            for containers in replicas.values():
                actions += [Remove(service=service, id=c.id) for c in _ordered(containers)]
    return actions


def _service_actions(
    desired: DesiredStack,
    service: DesiredService,
    replicas: dict[int, list[ObservedContainer]],
) -> list[Action]:
    if desired.state == REMOVED:
        return []
    actions: list[Action] = []
    wanted = service.replicas
    for replica in sorted(replicas, reverse=True):
        if replica > wanted or replica < 1:
            actions += [Remove(service=service.name, id=c.id) for c in replicas[replica]]
    for replica in range(1, wanted + 1):
        actions += _replica_actions(desired, service, replica, replicas.get(replica, []))
    return actions


def _replica_actions(
    desired: DesiredStack,
    service: DesiredService,
    replica: int,
    containers: list[ObservedContainer],
) -> list[Action]:
    name = service.name
    if not containers:
        return [Create(service=name, replica=replica)] if desired.state == RUNNING else []
    keeper, *extra = _ordered(containers, service.hash)
    resumed = _resumed(desired, service, keeper, extra)
    if resumed is not None:
        return resumed
    actions: list[Action] = [Remove(service=name, id=c.id) for c in extra]
    if desired.state == STOPPED:
        if keeper.state in _ACTIVE:
            actions.append(Stop(service=name, id=keeper.id))
        return actions
    if keeper.user_stopped and keeper.state not in _ACTIVE:
        return actions
    if keeper.hash != service.hash or keeper.state == "dead":
        order = service.update_order if keeper.state in _ACTIVE else "stop-first"
        actions.append(Replace(service=name, replica=replica, old_id=keeper.id, order=order))
    elif keeper.state in _STARTABLE:
        actions.append(Start(service=name, id=keeper.id))
    return actions


def _ready(container: ObservedContainer) -> bool:
    return container.state in _ACTIVE and container.health in ("healthy", "")


def _resumed(
    desired: DesiredStack,
    service: DesiredService,
    keeper: ObservedContainer,
    extra: list[ObservedContainer],
) -> list[Action] | None:
    """A replica caught half-way through a replace: its new container (desired spec) is
    not healthy yet while an old one still serves. The old one stays until the new one
    is healthy, exactly as if the replace had not been interrupted."""
    if desired.state != RUNNING or keeper.hash != service.hash or _ready(keeper):
        return None
    if keeper.state not in _ACTIVE:
        return None
    old = next((c for c in extra if c.hash != service.hash and _ready(c)), None)
    if old is None:
        return None
    actions: list[Action] = [Remove(service=service.name, id=c.id) for c in extra if c is not old]
    actions.append(
        Replace(
            service=service.name,
            replica=keeper.replica,
            old_id=old.id,
            order=service.update_order,
            adopt=keeper.id,
        )
    )
    return actions


def batches(replaces: Iterable[Replace], size: int) -> list[tuple[Replace, ...]]:
    """Replaces in batches of `size` (0: all at once), lowest replica first: the rolling
    path replaces a batch, waits for it to be healthy, then moves to the next."""
    ordered = sorted(replaces, key=lambda r: (r.replica, r.old_id))
    if size <= 0 or size >= len(ordered):
        return [tuple(ordered)] if ordered else []
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def _ordered(
    containers: list[ObservedContainer], wanted_hash: str | None = None
) -> list[ObservedContainer]:
    """Best first: the desired spec, running, healthy, newest; ties broken by id."""

    def score(c: ObservedContainer) -> tuple:
        return (
            c.hash == wanted_hash,
            c.state in _ACTIVE,
            c.health in ("healthy", ""),
            c.created,
            c.id,
        )

    return sorted(containers, key=score, reverse=True)


def _prep(desired: DesiredStack, per_service: dict[str, list[Action]]) -> list[Action]:
    """Network, volumes and images needed before anything is created."""
    creating = [
        name
        for name, acts in per_service.items()
        if any(isinstance(a, Create | Replace) for a in acts)
    ]
    if not creating:
        return []
    actions: list[Action] = []
    if desired.network:
        actions.append(EnsureNetwork(name=desired.network))
    if desired.stack_network:
        actions.append(EnsureNetwork(name=desired.stack_network, scope="stack"))
    actions += [EnsureVolume(name=v) for v in desired.volumes]
    images = sorted({desired.services[name].image for name in creating})
    actions += [Pull(image=image) for image in images]
    return actions


def _level_waves(desired: DesiredStack, per_service: dict[str, list[Action]]) -> list[Wave]:
    graph = {name: set(s.depends_on) for name, s in desired.services.items()}
    levels = start_levels(graph)
    if desired.state == STOPPED:
        levels = list(reversed(levels))  # stop dependents before what they depend on
    waves = []
    for level in levels:
        actions = tuple(a for name in level for a in per_service[name])
        waits: dict[str, str] = {}
        if desired.state == RUNNING:
            for name in level:
                if any(isinstance(a, Create | Replace | Start) for a in per_service[name]):
                    for dep, condition in desired.services[name].depends_on.items():
                        if condition != "service_started" and dep in desired.services:
                            waits[dep] = condition
        waves.append(Wave(actions, waits))
    return waves


def simulate(
    observed: Iterable[ObservedContainer], waves: Iterable[Wave], desired: DesiredStack
) -> list[ObservedContainer]:
    """What the engine would hold after the waves succeed (for tests and dry runs)."""
    state = {c.id: c for c in observed}
    counter = max((c.created for c in state.values()), default=0.0)
    for wave in waves:
        for action in wave.actions:
            counter += 1
            _apply(state, action, desired, counter)
    return list(state.values())


def _apply(state: dict, action: Action, desired: DesiredStack, counter: float) -> None:
    def new(service: str, replica: int) -> ObservedContainer:
        spec = desired.services[service]
        return ObservedContainer(
            id=f"new-{counter:g}",
            service=service,
            replica=replica,
            hash=spec.hash,
            state="running",
            health="healthy",
            created=counter,
        )

    if isinstance(action, Create):
        made = new(action.service, action.replica)
        state[made.id] = made
    elif isinstance(action, Replace):
        state.pop(action.old_id, None)
        state.pop(action.adopt, None)
        made = new(action.service, action.replica)
        state[made.id] = made
    elif isinstance(action, Remove):
        state.pop(action.id, None)
    elif isinstance(action, Start | Stop) and action.id in state:
        old = state[action.id]
        running = isinstance(action, Start)
        state[action.id] = ObservedContainer(
            **{
                **old.__dict__,
                "state": "running" if running else "exited",
                "health": "healthy" if running else "",
            }
        )
