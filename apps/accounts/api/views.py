from apps.core.api import TenantScopedViewSet


class ApiTokenViewSet(TenantScopedViewSet):
    pass
