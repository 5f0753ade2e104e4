from apps.core.api import TenantScopedViewSet


class EventViewSet(TenantScopedViewSet):
    pass
