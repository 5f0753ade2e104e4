"""Autoscaling pages under /autoscaling/."""

from django.urls import path

from apps.autoscaling import views

app_name = "autoscaling"
urlpatterns = [
    path("services/<int:pk>/", views.ServiceAutoscalingView.as_view(), name="service"),
]
