from django.urls import path

from apps.monitoring import views as monitoring
from apps.portal import views

app_name = "portal"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_context, name="switch"),
    path("monitoring/", monitoring.overview, name="monitoring"),
    *[
        path(f"monitoring/charts/{kind}/<int:pk>/", view.as_view(), name=f"monitoring_chart_{kind}")
        for kind, view in monitoring.CHART_VIEWS.items()
    ],
    *[path(f"{name}/", views.section, {"section": name}, name=name) for name in views.SECTIONS],
]
