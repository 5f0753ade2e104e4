"""Puts the user's current tenant and environment on the request.

The choice is kept in the session and re-checked against memberships on every request,
so a removed member loses the tenant at once.
"""

from apps.tenants.models import Environment, Tenant

SESSION_TENANT = "berth_tenant_id"
SESSION_ENVIRONMENT = "berth_environment_id"


def current_tenant_for(request):
    """The tenant chosen in the session if still visible, else the user's first one."""
    user = request.user
    if not user.is_authenticated:
        return None, None
    tenants = Tenant.objects.visible_to(user)
    chosen = tenants.filter(pk=request.session.get(SESSION_TENANT)).first()
    # Without a choice, a platform admin starts in a tenant of their own, if any.
    tenant = chosen or tenants.filter(memberships__user=user).first() or tenants.first()
    if tenant is None:
        return None, None
    environments = Environment.objects.filter(tenant=tenant)
    environment = (
        environments.filter(pk=request.session.get(SESSION_ENVIRONMENT)).first()
        or environments.first()
    )
    return tenant, environment


class CurrentTenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant, request.environment = None, None
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            request.tenant, request.environment = current_tenant_for(request)
        return self.get_response(request)
