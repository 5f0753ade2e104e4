"""What one container of a service may use (memory, pids, CPUs), and what a spec adds up to.

One home for the rule (STYLE 15): the driver's container request and the tenant's quota
read the same figures, so a quota never counts a limit the container does not get.

Per container:
- memory: `deploy.resources.limits.memory`, else `mem_limit`, else the environment's
  default (`hardening.memory`); 0 means no limit;
- pids: `deploy.resources.limits.pids`, else the environment's default
  (`hardening.pids`); 0 means no limit (the compose parser refuses 0 and -1 in a file,
  an environment default of 0 gets here);
- cpus: `deploy.resources.limits.cpus`, else `cpus`; None means no limit (Berth sets
  no CPU default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.compose.spec import ComposeProject


@dataclass(frozen=True)
class ContainerResources:
    """The limits one container of a service runs with (0 / None: no limit)."""

    memory: int = 0
    pids: int = 0
    cpus: float | None = None


def service_resources(
    spec: Mapping[str, Any], project: ComposeProject, service_name: str
) -> ContainerResources:
    """The per-container limits of `service_name`: the service's own, else the
    environment's defaults recorded in the spec (`hardening`)."""
    service = project.services[service_name]
    hardening = spec.get("hardening") or {}
    limits = service.deploy.limits
    cpus = limits.cpus if limits.cpus is not None else service.cpus
    return ContainerResources(
        memory=int(limits.memory or service.mem_limit or hardening.get("memory") or 0),
        pids=int(limits.pids or hardening.get("pids") or 0),
        cpus=float(cpus) if cpus else None,
    )


@dataclass
class SpecTotals:
    """What a stack's spec holds once every replica runs: the figures a quota counts.

    `unlimited_memory`, `unlimited_cpus` and `pids` name services per container, so a
    refusal can say which service needs a limit."""

    containers: int = 0
    memory: int = 0
    cpus: float = 0.0
    unlimited_memory: list[str] = field(default_factory=list)
    unlimited_cpus: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # service -> pids per container

    def add(self, other: SpecTotals) -> SpecTotals:
        return SpecTotals(
            containers=self.containers + other.containers,
            memory=self.memory + other.memory,
            cpus=round(self.cpus + other.cpus, 3),
            unlimited_memory=[*self.unlimited_memory, *other.unlimited_memory],
            unlimited_cpus=[*self.unlimited_cpus, *other.unlimited_cpus],
            pids={**self.pids, **other.pids},
        )


def spec_totals(spec: Mapping[str, Any], project: ComposeProject) -> SpecTotals:
    """Containers, memory and CPUs of every replica of every service of the spec.

    A service scaled to 0 runs nothing and counts nothing, whatever its limits."""
    totals = SpecTotals()
    for name, service in project.services.items():
        replicas = service.replicas
        if replicas <= 0:
            continue
        each = service_resources(spec, project, name)
        totals.containers += replicas
        totals.memory += each.memory * replicas
        totals.cpus = round(totals.cpus + (each.cpus or 0) * replicas, 3)
        totals.pids[name] = each.pids
        if not each.memory:
            totals.unlimited_memory.append(name)
        if each.cpus is None:
            totals.unlimited_cpus.append(name)
    return totals
