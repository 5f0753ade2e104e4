"""`/metrics`: the platform's Prometheus endpoint (the tenant one is under /api/v1/)."""

from django.urls import path

from apps.monitoring.api import PlatformMetricsView

app_name = "monitoring"
urlpatterns = [path("", PlatformMetricsView.as_view(), name="platform-metrics")]
