from apps.core.api import TenantScopedViewSet


class TenantViewSet(TenantScopedViewSet):
    pass


class EnvironmentViewSet(TenantScopedViewSet):
    pass


class MembershipViewSet(TenantScopedViewSet):
    pass


class InvitationViewSet(TenantScopedViewSet):
    pass
