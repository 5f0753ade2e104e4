"""The REST API, version 1: one router for every app's viewsets, plus the schema."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from apps.accounts.api.views import ApiTokenViewSet
from apps.activity.api.views import EventViewSet
from apps.alerts.api.views import (
    AlertChannelViewSet,
    AlertRuleViewSet,
    AlertViewSet,
    SilenceViewSet,
)
from apps.autoscaling.api import AutoscalerViewSet
from apps.catalog.api.views import TemplateViewSet
from apps.deployments.api.resources import (
    ContainerViewSet,
    ImageViewSet,
    NetworkViewSet,
    VolumeViewSet,
)
from apps.deployments.api.rollouts import RolloutViewSet
from apps.deployments.api.routes import RouteViewSet
from apps.deployments.api.secrets import SecretViewSet
from apps.deployments.api.views import RevisionViewSet, ServiceViewSet, StackViewSet
from apps.hosts.api.views import HostViewSet
from apps.logs.api.views import LogLineViewSet, LogRetentionViewSet
from apps.monitoring.api import TenantMetricsView
from apps.registry.api.views import RepositoryViewSet, RobotViewSet, UsageViewSet
from apps.tenants.api.views import (
    EnvironmentViewSet,
    InvitationViewSet,
    MembershipViewSet,
    TenantViewSet,
)
from apps.traffic.api import CertificateViewSet

router = DefaultRouter()
router.include_format_suffixes = False  # JSON by default, `?format=` when asked: one URL each
router.register("tenants", TenantViewSet, basename="tenant")
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("hosts", HostViewSet, basename="host")
router.register("events", EventViewSet, basename="event")
router.register("templates", TemplateViewSet, basename="template")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("stacks", StackViewSet, basename="stack")
router.register("services", ServiceViewSet, basename="service")
router.register("revisions", RevisionViewSet, basename="revision")
router.register("routes", RouteViewSet, basename="route")
router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("secrets", SecretViewSet, basename="secret")
router.register("containers", ContainerViewSet, basename="container")
router.register("volumes", VolumeViewSet, basename="volume")
router.register("networks", NetworkViewSet, basename="network")
router.register("images", ImageViewSet, basename="image")
router.register("registry/repositories", RepositoryViewSet, basename="registry-repository")
router.register("registry/robots", RobotViewSet, basename="registry-robot")
router.register("registry/usage", UsageViewSet, basename="registry-usage")
router.register("certificates", CertificateViewSet, basename="certificate")
router.register("autoscaling", AutoscalerViewSet, basename="autoscaling")
router.register("logs/retention", LogRetentionViewSet, basename="log-retention")
router.register("logs", LogLineViewSet, basename="log")
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")
router.register("alerts", AlertViewSet, basename="alert")
router.register("alert-silences", SilenceViewSet, basename="alert-silence")
router.register("alert-channels", AlertChannelViewSet, basename="alert-channel")

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path("metrics/prometheus/", TenantMetricsView.as_view(), name="tenant-metrics"),
    *router.urls,
]
