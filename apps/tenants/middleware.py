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


def switch_context(session, tenant, environment=None) -> None:
    """Make `tenant` the session's current tenant, in `environment` or else its first
    (the middleware re-checks both against memberships on the next request)."""
    if environment is None or environment.tenant_id != tenant.pk:
        environment = Environment.objects.filter(tenant=tenant).first()
    session[SESSION_TENANT] = tenant.pk
    session[SESSION_ENVIRONMENT] = environment.pk if environment else None


class CurrentTenantMiddleware:
    """Sync-only on purpose. Under daphne, Django runs every middleware above the
    innermost sync-only one in a single thread, with one hop to the event loop for the
    view. Were this one async-capable (with WhiteNoise made so too), Django would run the
    chain on the loop, but its own middlewares then call `sync_to_async` for each
    process_request and process_response: 17 hand-offs per page instead of 6, about 1 ms
    slower (tests/perf/bench_asgi_requests.py).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant, request.environment = None, None
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            request.tenant, request.environment = current_tenant_for(request)
        return self.get_response(request)
