"""Which shells a container's terminal may offer, and why none when there is none.

The shell page offers only shells the container has (stat through the engine's archive
API, so an image without any shell can be asked too), says when the container is not
running, and the shell socket turns an exec the runtime refused into a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.deployments.models import Container
from apps.deployments.swarm_tasks import container_problem
from apps.hosts.engine import EngineError, get_engine, streams

#: The shells the page looks for, in the order it offers them.
SHELL_PATHS = ("/bin/sh", "/bin/bash", "/bin/ash", "/bin/zsh")
#: What the socket accepts: the paths, and names the container's PATH resolves.
SHELLS = (*SHELL_PATHS, "sh", "bash", "ash")


@dataclass(frozen=True)
class ShellChoice:
    """What the shell page can offer: `shells` when `running`; else `problem` says why."""

    running: bool = False
    shells: list[str] = field(default_factory=list)
    problem: str = ""


def shell_choice(container: Container, *, operator: bool = False) -> ShellChoice:
    """Ask the container's engine whether it runs and which shells it has.

    The engine's own error names its endpoint (platform infrastructure): only an
    operator (`operator`, a platform admin) reads it, as on the resource pages.
    """
    if not container.engine_id or container.host_id is None:
        return ShellChoice(problem="This container was not created yet: no shell to open.")
    unreachable = container_problem(container, "shell")
    if unreachable:  # a Swarm task on a node whose engine Berth cannot reach
        return ShellChoice(problem=unreachable)
    engine = get_engine(container.host)
    try:
        if not streams.container_running(engine, container.engine_id):
            return ShellChoice(
                problem="This container is not running: start it to open a shell in it."
            )
        found = engine.available_shells(container.engine_id, SHELL_PATHS)
    except EngineError as exc:
        reason = f": {exc}" if operator else "; try again in a moment, or ask an operator"
        return ShellChoice(problem=f"The container's host did not answer{reason}.")
    finally:
        engine.close()
    if not found:
        looked = ", ".join(SHELL_PATHS)
        return ShellChoice(
            running=True, problem=f"This container has no shell (none of {looked} exists in it)."
        )
    return ShellChoice(running=True, shells=found)
