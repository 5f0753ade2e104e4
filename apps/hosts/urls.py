"""Hosts pages under /hosts/ (platform admins only)."""

from django.urls import path

from apps.hosts import views

app_name = "hosts"
urlpatterns = [
    path("", views.HostListView.as_view(), name="list"),
    path("new/", views.HostCreateView.as_view(), name="create"),
    path("<int:pk>/", views.HostDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.HostUpdateView.as_view(), name="edit"),
    path("<int:pk>/delete/", views.HostDeleteView.as_view(), name="delete"),
    path("<int:pk>/check/", views.HostCheckView.as_view(), name="check"),
    path("<int:pk>/drain/", views.HostDrainView.as_view(), name="drain"),
    path(
        "<int:pk>/nodes/<str:node_id>/availability/",
        views.SwarmNodeAvailabilityView.as_view(),
        name="node_availability",
    ),
    path(
        "<int:pk>/nodes/<str:node_id>/engine/",
        views.SwarmNodeEngineView.as_view(),
        name="node_engine",
    ),
]
