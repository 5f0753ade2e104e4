"""Routes under /registry/ (shared by both registry helpers: add lines, don't rewrite)."""

from django.urls import path

from apps.registry import views
from apps.registry.token.views import RegistryTokenView

app_name = "registry"

urlpatterns = [
    path("token/", RegistryTokenView.as_view(), name="token"),
    # registry-features: pages and the notification webhook
    path("", views.RepositoryListView.as_view(), name="list"),
    path("notifications/", views.NotificationView.as_view(), name="notifications"),
    path("repositories/<int:pk>/", views.RepositoryDetailView.as_view(), name="repository"),
    path(
        "repositories/<int:pk>/visibility/",
        views.RepositoryVisibilityView.as_view(),
        name="visibility",
    ),
    path("repositories/<int:pk>/tags/<str:tag>/", views.TagDetailView.as_view(), name="tag"),
    path(
        "repositories/<int:pk>/tags/<str:tag>/delete/",
        views.TagDeleteView.as_view(),
        name="tag_delete",
    ),
    path(
        "repositories/<int:pk>/delete/",
        views.RepositoryDeleteView.as_view(),
        name="repository_delete",
    ),
    path("robots/", views.RobotListView.as_view(), name="robots"),
    path("robots/new/", views.RobotCreateView.as_view(), name="robot_create"),
    path("robots/<int:pk>/revoke/", views.RobotRevokeView.as_view(), name="robot_revoke"),
    path("usage/", views.UsageView.as_view(), name="usage"),
    path("usage/threshold/", views.ThresholdView.as_view(), name="threshold"),
    path("gc/", views.GarbageCollectView.as_view(), name="gc"),
    # the registry's gate (HAProxy) sends manifest uploads here: apps/registry/gate.py
    path("gate/v2/<path:path>", views.ManifestGateView.as_view(), name="gate"),
]
