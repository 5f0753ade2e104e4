"""Top-level URL configuration: pages, the API under /api/v1/ and the admin."""

from django.contrib import admin
from django.urls import include, path

from apps.tenants.urls import invitation_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("paas.api_urls")),
    path("", include("apps.portal.urls")),
    path("tenants/", include("apps.tenants.urls")),
    path("invitations/", include((invitation_urlpatterns, "invitations"))),
    path("settings/", include("apps.accounts.urls")),
    path("activity/", include("apps.activity.urls")),
    path("logs/", include("apps.logs.urls")),
    path("hosts/", include("apps.hosts.urls")),
    path("catalog/", include("apps.catalog.urls")),
    path("stacks/", include("apps.deployments.urls")),
    path("stacks/", include("apps.traffic.urls_routes")),
    path("", include("apps.deployments.urls_resources")),
    path("environments/", include("apps.deployments.urls_secrets")),
    path("traffic/", include("apps.traffic.urls")),
    path("registry/", include("apps.registry.urls")),
    path("metrics", include("apps.monitoring.urls")),
    path("autoscaling/", include("apps.autoscaling.urls")),
    path("alerts/", include("apps.alerts.urls")),
]

handler403 = "apps.portal.views.permission_denied"
handler404 = "apps.portal.views.page_not_found"
handler500 = "apps.portal.views.server_error"
