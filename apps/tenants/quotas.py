"""A tenant's quotas and what it uses of them, in one list for its page, the API and admin.

The limits on stacks, containers, memory, CPUs and pids live in TenantQuota (this app);
registry storage keeps its own row in apps.registry. What a tenant uses is known by the
apps above this one, so the lines come from the modules named in
settings.BERTH_QUOTA_PROVIDERS (a lower layer never imports a higher one): each module
has `quota_lines(tenant) -> list[QuotaLine]` and `set_quota_values(actor, tenant, values)`
for the keys of its own lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from types import ModuleType
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_module

# key -> (label, unit) of the limits TenantQuota holds; units: count, bytes, cpus
TENANT_LIMITS = {
    "stacks": ("Stacks", "count"),
    "containers": ("Containers (replicas)", "count"),
    "memory": ("Memory", "bytes"),
    "cpus": ("CPUs", "cpus"),
    "pids": ("Processes per container", "count"),
}


@dataclass(frozen=True)
class QuotaLine:
    """One quota: what is used and the limit (0: unlimited). For a per-container limit
    (pids) `used` is the highest value any container of the tenant asks."""

    key: str
    label: str
    used: int | float | Decimal
    limit: int | float | Decimal
    unit: str = "count"
    per_container: bool = False

    @property
    def unlimited(self) -> bool:
        return not self.limit

    @property
    def percent(self) -> int | None:
        """Share of the limit in use (for the page's bar), None when unlimited."""
        if not self.limit:
            return None
        return min(100, int(Decimal(str(self.used)) * 100 / Decimal(str(self.limit))))

    def as_dict(self) -> dict[str, Any]:
        number = float if self.unit == "cpus" else int
        return {
            "label": self.label,
            "used": number(self.used),
            "limit": number(self.limit),
            "unit": self.unit,
            "per_container": self.per_container,
        }


@cache
def providers() -> tuple[ModuleType, ...]:
    return tuple(import_module(path) for path in settings.BERTH_QUOTA_PROVIDERS)


def quota_lines(tenant: Any) -> list[QuotaLine]:
    """Every quota of the tenant with its usage, in the providers' order."""
    return [line for provider in providers() for line in provider.quota_lines(tenant)]


def settable_keys() -> list[str]:
    """The keys a platform admin may set (each provider's own)."""
    return [key for provider in providers() for key in provider.QUOTA_KEYS]
