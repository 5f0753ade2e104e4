"""Template context for the base layout: navigation, tenant switcher, health banners."""

from apps.portal.health import service_banners
from apps.tenants.models import Tenant


def berth(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"berth_banners": []}
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_environment": getattr(request, "environment", None),
        "my_tenants": Tenant.objects.visible_to(user).filter(memberships__user=user).distinct()
        if not user.is_superuser
        else Tenant.objects.all(),
        "berth_banners": service_banners(include_hosts=user.is_superuser),
    }
