from django.urls import path

from apps.portal import views

app_name = "portal"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_context, name="switch"),
    *[path(f"{name}/", views.section, {"section": name}, name=name) for name in views.SECTIONS],
]
