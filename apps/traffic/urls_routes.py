"""The frontier's pages under a stack's URL (/stacks/<pk>/routes/...)."""

from django.urls import path

from apps.traffic import views_routes

app_name = "stack_routes"
urlpatterns = [
    path(
        "<int:pk>/routes/health/",
        views_routes.StackRouteHealthView.as_view(),
        name="health",
    ),
]
