"""Service dependency graph: cycle detection for validation, start order for the driver.

Kept apart from parsing because the driver needs the same order at deploy time: services
in one level have no dependency on each other and can start in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A dependency cycle as a closed path ["a", "b", "a"], or None; deterministic order."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt in graph and nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def start_levels(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Services grouped by start order: level 0 needs nothing, level n needs levels < n.

    The graph must be acyclic (parse_project guarantees it for a parsed project).
    """
    remaining = {name: set(deps) & set(graph) for name, deps in graph.items()}
    levels: list[list[str]] = []
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if not deps)
        if not ready:
            raise ValueError("dependency cycle")
        levels.append(ready)
        for name in ready:
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return levels
