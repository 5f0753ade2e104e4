"""Usage figures from the stored notifications: pulls and pushes per day, the hottest
repositories, bytes transferred, and the bar chart the usage page draws (inline SVG,
geometry computed here so the template only places rectangles)."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.registry.models import RegistryEvent, Repository, TenantRegistryQuota
from apps.tenants.models import Tenant

PULL, PUSH = RegistryEvent.Action.PULL, RegistryEvent.Action.PUSH


def _since(days: int) -> date:
    return timezone.localdate() - timedelta(days=days - 1)


def daily(tenant: Tenant, days: int = 14, repository: Repository | None = None) -> list[dict]:
    """[{day, pulls, pushes}] for the last `days` days, oldest first, zero days included."""
    start = _since(days)
    events = RegistryEvent.objects.filter(tenant=tenant, counted=True, timestamp__date__gte=start)
    if repository is not None:
        events = events.filter(repository=repository)
    rows = (
        events.annotate(day=TruncDate("timestamp"))
        .values("day")
        .annotate(
            pulls=Count("pk", filter=Q(action=PULL)), pushes=Count("pk", filter=Q(action=PUSH))
        )
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        row = by_day.get(day, {})
        result.append({"day": day, "pulls": row.get("pulls", 0), "pushes": row.get("pushes", 0)})
    return result


def chart(rows: list[dict], width: int = 640, height: int = 160) -> dict:
    """Bar geometry: per day a pull bar and a push bar, scaled to the busiest day."""
    peak = max([1, *(max(r["pulls"], r["pushes"]) for r in rows)])
    slot = width / max(1, len(rows))
    bar = max(2.0, slot * 0.38)
    bars = []
    for index, row in enumerate(rows):
        x = index * slot + slot * 0.1
        pull_h = row["pulls"] / peak * (height - 20)
        push_h = row["pushes"] / peak * (height - 20)
        bars.append(
            {
                **row,
                "pull_x": round(x, 1),
                "push_x": round(x + bar, 1),
                "pull_y": round(height - pull_h, 1),
                "push_y": round(height - push_h, 1),
                "pull_h": round(pull_h, 1),
                "push_h": round(push_h, 1),
                "label_x": round(x + bar, 1),
            }
        )
    return {"width": width, "height": height, "bar": round(bar, 1), "peak": peak, "bars": bars}


def hottest(tenant: Tenant, days: int = 7, limit: int = 10) -> list[dict]:
    """Repositories by counted pulls over the last `days` days."""
    rows = (
        RegistryEvent.objects.filter(
            tenant=tenant,
            action=PULL,
            counted=True,
            repository__isnull=False,
            timestamp__date__gte=_since(days),
        )
        .values("repository")
        .annotate(pulls=Count("pk"))
        .order_by("-pulls")[:limit]
    )
    repos = Repository.objects.in_bulk([row["repository"] for row in rows])
    return [{"repository": repos[row["repository"]], "pulls": row["pulls"]} for row in rows]


def transferred(tenant: Tenant, days: int = 30) -> dict:
    events = RegistryEvent.objects.filter(tenant=tenant, timestamp__date__gte=_since(days))
    totals = events.aggregate(
        pulled=Sum("transferred", filter=Q(action=PULL)),
        pushed=Sum("transferred", filter=Q(action=PUSH)),
    )
    return {"pulled": totals["pulled"] or 0, "pushed": totals["pushed"] or 0}


def summary(tenant: Tenant, days: int = 14) -> dict:
    """Everything the usage page and the usage API show about one tenant."""
    quota = TenantRegistryQuota.objects.filter(tenant=tenant).first()
    return {
        "tenant": tenant.slug,
        "used_bytes": quota.used_bytes if quota else 0,
        "quota_bytes": quota.quota_bytes if quota else 0,
        "pull_alert_threshold": quota.pull_alert_threshold if quota else 0,
        "daily": daily(tenant, days),
        "hottest": [
            {"repository": h["repository"].full_name, "pulls": h["pulls"]} for h in hottest(tenant)
        ],
        "transferred_30d": transferred(tenant),
        "repositories": [
            {"repository": r.full_name, "size_bytes": r.size_bytes}
            for r in Repository.objects.filter(tenant=tenant).select_related("tenant")
        ],
    }
