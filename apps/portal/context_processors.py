"""Template context for the base layout: navigation, tenant switcher, health banners."""

from apps.portal.health import service_banners
from apps.tenants.models import Tenant

#: Above this many tenants (or environments) the switcher is a search box over a
#: datalist instead of a select: a platform admin may see hundreds.
SWITCHER_SELECT_MAX = 8


def berth(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"berth_banners": []}
    tenant = getattr(request, "tenant", None)
    tenants = (
        Tenant.objects.all()
        if user.is_superuser
        else Tenant.objects.visible_to(user).filter(memberships__user=user).distinct()
    )
    # One query for the tenants (only what the switcher shows) and one for the current
    # tenant's environments; never another tenant's environments.
    return {
        "current_tenant": tenant,
        "current_environment": getattr(request, "environment", None),
        "my_tenants": tenants.only("pk", "slug", "name"),
        "switcher_environments": tenant.environments.only("pk", "slug", "name", "tenant_id")
        if tenant is not None
        else [],
        "switcher_select_max": SWITCHER_SELECT_MAX,
        "berth_banners": service_banners(include_hosts=user.is_superuser),
        # Counted only when the top bar renders it (one query): the badge of alerts.
        "firing_alerts": lambda: _firing_alerts(user, tenant),
    }


def _firing_alerts(user, tenant) -> int:
    """Firing, unacknowledged, unsilenced alerts of the current tenant (the badge)."""
    from apps.alerts.models import Alert
    from apps.alerts.services import firing_unacknowledged

    if tenant is None:
        return 0
    return firing_unacknowledged(Alert.objects.visible_to(user).filter(tenant=tenant)).count()
