"""The frontier's operator pages under /traffic/ (platform admins only)."""

from django.urls import path

from apps.traffic import views

app_name = "traffic"
urlpatterns = [
    path("frontier/", views.FrontierStatusView.as_view(), name="frontier"),
    path("frontier/apply/", views.FrontierApplyView.as_view(), name="frontier_apply"),
]
