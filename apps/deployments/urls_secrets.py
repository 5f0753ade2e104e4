"""An environment's secrets and configs: /environments/<id>/secrets/ and its forms."""

from django.urls import path

from apps.deployments import views_secrets as views

app_name = "secrets"
urlpatterns = [
    path("<int:pk>/secrets/", views.EnvironmentSecretsView.as_view(), name="list"),
    path("secrets/<int:pk>/rotate/", views.SecretRotateView.as_view(), name="rotate"),
    path("secrets/<int:pk>/delete/", views.SecretDeleteView.as_view(), name="delete"),
]
