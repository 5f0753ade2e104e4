from apps.core.api import TenantScopedViewSet


class HostViewSet(TenantScopedViewSet):
    pass
