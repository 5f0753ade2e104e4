"""Resource pages: /resources/ (the tenant's volumes, networks, images), a stack's
Volumes card, a container's inspect view, and a host's images (platform admins)."""

from django.urls import path

from apps.deployments import views_resources as views

app_name = "resources"
urlpatterns = [
    path("resources/volumes/", views.VolumeListView.as_view(), name="volumes"),
    path("resources/volumes/remove/", views.VolumeRemoveView.as_view(), name="volume_remove"),
    path("resources/networks/", views.NetworkListView.as_view(), name="networks"),
    path("resources/images/", views.ImageListView.as_view(), name="images"),
    path("resources/hosts/<int:pk>/images/", views.HostImagesView.as_view(), name="host_images"),
    path("stacks/<int:pk>/volumes/", views.StackVolumesView.as_view(), name="stack_volumes"),
    path(
        "stacks/containers/<int:pk>/inspect/",
        views.ContainerInspectView.as_view(),
        name="container_inspect",
    ),
]
