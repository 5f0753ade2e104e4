"""The Prometheus endpoints: `/metrics` for the platform, `/api/v1/metrics/prometheus/`
for a tenant's own series. Thin views: the queryset decides what is shown."""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import authentication, permissions, renderers
from rest_framework.views import APIView

from apps.accounts.authentication import BearerTokenAuthentication
from apps.core.api import api_token
from apps.core.tenancy import is_platform_admin, visible_tenant_ids
from apps.monitoring import prometheus
from apps.monitoring.models import Series

#: `request.auth` of a scrape that presented BERTH_METRICS_TOKEN.
PLATFORM_SCRAPE = "platform-scrape"


class PrometheusRenderer(renderers.BaseRenderer):
    """Text exposition for the scrape, and errors (401, 403) as JSON text."""

    media_type = "text/plain"
    format = "prometheus"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


class MetricsTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <BERTH_METRICS_TOKEN>`: a Prometheus server scraping the
    platform without a user's token. Any other bearer goes on to the API tokens."""

    def authenticate(self, request):
        configured = settings.BERTH_METRICS_TOKEN
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not configured or len(header) != 2 or header[0].lower() != "bearer":
            return None
        if hmac.compare_digest(header[1].encode(), configured.encode()):
            return AnonymousUser(), PLATFORM_SCRAPE
        return None

    def authenticate_header(self, request) -> str:
        return "Bearer"


class MetricsTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.monitoring.api.MetricsTokenAuthentication"
    name = "metricsToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "BERTH_METRICS_TOKEN, for the platform's /metrics only.",
        }


EXPOSITION = {(200, "text/plain"): OpenApiTypes.STR}


class PlatformScrapePermission(permissions.BasePermission):
    """The metrics token, or a platform admin (session or an unbound token)."""

    def has_permission(self, request, view) -> bool:
        if request.auth == PLATFORM_SCRAPE:
            return True
        return is_platform_admin(request.user, api_token(request))


class PlatformMetricsView(APIView):
    """Every series of the installation, hosts included: for the operators' Prometheus.
    Never open: BERTH_METRICS_TOKEN or a platform admin's credentials."""

    authentication_classes = [
        MetricsTokenAuthentication,
        BearerTokenAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [PlatformScrapePermission]
    renderer_classes = [PrometheusRenderer]

    @extend_schema(responses=EXPOSITION, summary="Prometheus exposition of the platform")
    def get(self, request):
        return _exposition(prometheus.render(Series.objects.all(), hosts=True))


class TenantMetricsView(APIView):
    """The series of the caller's own tenants (their memberships; a token bound to a
    tenant: that tenant only), even for a platform admin: a tenant's Prometheus never
    sees another tenant's containers. `?tenant=<slug>` narrows to one of them."""

    renderer_classes = [PrometheusRenderer]

    @extend_schema(
        responses=EXPOSITION,
        summary="Prometheus exposition of your tenants' series",
        parameters=[OpenApiParameter("tenant", str, description="one of your tenants' slug")],
    )
    def get(self, request):
        tenant_ids = visible_tenant_ids(request.user, token=api_token(request))
        queryset = Series.objects.filter(tenant__in=tenant_ids)
        slug = request.query_params.get("tenant")
        if slug:
            queryset = queryset.filter(tenant__slug=slug)
        return _exposition(prometheus.render(queryset, hosts=False))


def _exposition(text: str) -> HttpResponse:
    return HttpResponse(text, content_type=prometheus.CONTENT_TYPE)
