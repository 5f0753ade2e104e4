from django.urls import path

from apps.core import views

app_name = "core"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_context, name="switch"),
    *[path(f"{name}/", views.section, {"section": name}, name=name) for name in views.SECTIONS],
]
