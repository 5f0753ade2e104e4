"""A tenant's quota on stacks, containers, memory, CPUs and pids, enforced before a change.

The service layer (services.py) calls `enforce` in every change that can add to what a
tenant runs (deploy, redeploy, upgrade, rollback, scale), inside its transaction and
before anything is written, so a refused change leaves no revision, no event and nothing
for the reconciler. `enforce` locks the tenant's row first: two deploys of one tenant
are judged one after the other, and cannot both slip under the quota.

What counts is the desired state: every replica of every stack not being removed, stopped
stacks too (starting one needs no check). Per container the limits are those the driver
sets (resources.service_resources). Platform admins are held to the quota like anyone
deploying in the tenant; 0 means unlimited.

- memory: with a memory quota, every service needs a memory limit (its own or the
  environment's default), since an unlimited container could take the whole host;
- cpus: Berth sets no CPU default, so with a CPU quota every service must set `cpus`
  (or `deploy.resources.limits.cpus`); one that does not is refused with that advice;
- pids: a per-container ceiling; a compose file's `limits.pids` above it, or an
  environment default of 0 (unlimited), is refused.

A change that adds nothing to a figure already over its quota (lowered by an admin
since) is let through: scaling down must stay possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from apps.deployments.models import Stack
from apps.deployments.resources import SpecTotals, spec_totals
from apps.deployments.spec import project_from_spec
from apps.tenants.models import Tenant
from apps.tenants.quotas import TENANT_LIMITS, QuotaLine
from apps.tenants.services import tenant_quota

QUOTA_KEYS: tuple[str, ...] = ()  # TenantQuota's keys are set by apps.tenants.services


@dataclass(frozen=True)
class Limits:
    """A tenant's limits as plain numbers (0: unlimited)."""

    slug: str
    stacks: int = 0
    containers: int = 0
    memory: int = 0
    cpus: Decimal = Decimal(0)
    pids: int = 0


def limits_of(tenant: Tenant) -> Limits:
    quota = tenant_quota(tenant)
    return Limits(
        slug=tenant.slug,
        stacks=quota.stacks,
        containers=quota.containers,
        memory=quota.memory,
        cpus=Decimal(quota.cpus),
        pids=quota.pids,
    )


def _size(value: int) -> str:
    """Bytes as MiB or GiB, the units of memory limits (plain spaces: API text)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if value >= scale:
            return f"{round(value / scale, 1):g} {unit}"
    return f"{value} bytes"


def _cpus(value: float | Decimal) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def _plural(count: int | str, word: str) -> str:
    return f"{count} {word}" if str(count) == "1" else f"{count} {word}s"


def quota_problems(
    limits: Limits, before: SpecTotals, after: SpecTotals, stacks_before: int, stacks_after: int
) -> dict[str, list[str]]:
    """Why the tenant's stacks going from `before` to `after` passes its quota, by quota
    key (empty when it does not). Pure: tested with plain numbers."""
    who = f"Tenant {limits.slug}'s quota"
    problems: dict[str, list[str]] = {}

    def over(key: str, limit: Any, was: Any, now: Any, text: str) -> None:
        if limit and now > limit and now > was:
            problems.setdefault(key, []).append(text)

    over(
        "stacks",
        limits.stacks,
        stacks_before,
        stacks_after,
        f"{who} allows {_plural(limits.stacks, 'stack')}; this change would make {stacks_after}.",
    )
    over(
        "replicas",
        limits.containers,
        before.containers,
        after.containers,
        f"{who} allows {_plural(limits.containers, 'container')}; "
        f"this change would make {after.containers}.",
    )
    _memory_problems(limits, before, after, who, problems, over)
    _cpu_problems(limits, before, after, who, problems, over)
    _pids_problems(limits, after, who, problems)
    return problems


def _memory_problems(limits, before, after, who, problems, over) -> None:
    if not limits.memory:
        return
    for name in sorted(set(after.unlimited_memory)):
        problems.setdefault("memory", []).append(
            f"{who} limits memory: service {name} needs a memory limit "
            "(deploy.resources.limits.memory or mem_limit)."
        )
    over(
        "memory",
        limits.memory,
        before.memory,
        after.memory,
        f"{who} allows {_size(limits.memory)} of memory; "
        f"this change would make {_size(after.memory)}.",
    )


def _cpu_problems(limits, before, after, who, problems, over) -> None:
    if not limits.cpus:
        return
    for name in sorted(set(after.unlimited_cpus)):
        problems.setdefault("cpus", []).append(
            f"{who} limits CPUs: service {name} must set cpus "
            "(deploy.resources.limits.cpus or cpus)."
        )
    over(
        "cpus",
        limits.cpus,
        Decimal(str(before.cpus)),
        Decimal(str(after.cpus)),
        f"{who} allows {_cpus(limits.cpus)} CPUs; this change would make {_cpus(after.cpus)}.",
    )


def _pids_problems(limits, after, who, problems) -> None:
    if not limits.pids:
        return
    for name, pids in sorted(after.pids.items()):
        if not pids or pids > limits.pids:
            asked = "no limit" if not pids else str(pids)
            problems.setdefault("pids", []).append(
                f"{who} allows {limits.pids} processes per container; service {name} asks {asked}."
            )


def stack_totals(stack: Stack) -> SpecTotals:
    revision = stack.current_revision
    if revision is None:
        return SpecTotals()
    return spec_totals(revision.spec, project_from_spec(revision.spec))


def _other_stacks(tenant: Tenant, exclude: int | None):
    stacks = Stack.objects.filter(tenant=tenant).exclude(desired_state=Stack.Desired.REMOVED)
    if exclude is not None:
        stacks = stacks.exclude(pk=exclude)
    return stacks.select_related("current_revision")


def tenant_totals(tenant: Tenant, exclude: int | None = None) -> tuple[SpecTotals, int]:
    """What the tenant's stacks (but `exclude`) hold, and how many there are."""
    totals, count = SpecTotals(), 0
    for stack in _other_stacks(tenant, exclude):
        totals = totals.add(stack_totals(stack))
        count += 1
    totals.pids = {}  # pids are per container: only the changed stack's are judged
    return totals, count


def enforce(tenant: Tenant, spec: dict, stack: Stack | None = None) -> None:
    """Refuse with a ValidationError naming the quota when the tenant's stacks, with
    `stack` (None: a new stack) running `spec`, would pass its quota.

    Call inside the change's transaction: the tenant's row stays locked until it ends."""
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)
    limits = limits_of(tenant)
    if not any((limits.stacks, limits.containers, limits.memory, limits.cpus, limits.pids)):
        return
    others, count = tenant_totals(tenant, exclude=stack.pk if stack else None)
    current = stack_totals(stack) if stack is not None else SpecTotals()
    current.pids = {}
    after = others.add(spec_totals(spec, project_from_spec(spec)))
    before = others.add(current)
    stacks_before = count + (1 if stack is not None else 0)
    problems = quota_problems(limits, before, after, stacks_before, count + 1)
    if problems:
        raise ValidationError(problems)


def quota_lines(tenant: Tenant) -> list[QuotaLine]:
    """The tenant's page and API: each TenantQuota limit with what the stacks use."""
    limits = limits_of(tenant)
    totals, count = SpecTotals(), 0
    highest_pids = 0
    for stack in _other_stacks(tenant, None):
        each = stack_totals(stack)
        highest_pids = max([highest_pids, *each.pids.values()])
        totals = totals.add(each)
        count += 1
    used = {
        "stacks": count,
        "containers": totals.containers,
        "memory": totals.memory,
        "cpus": Decimal(str(totals.cpus)),
        "pids": highest_pids,
    }
    return [
        QuotaLine(
            key=key,
            label=label,
            used=used[key],
            limit=getattr(limits, key),
            unit=unit,
            per_container=key == "pids",
        )
        for key, (label, unit) in TENANT_LIMITS.items()
    ]


def set_quota_values(actor: Any, tenant: Tenant, values: dict) -> None:
    """Nothing of its own to set (see QUOTA_KEYS)."""
