"""The Logs page under /logs/."""

from django.urls import path

from apps.logs import views

app_name = "logs"
urlpatterns = [
    path("", views.LogListView.as_view(), name="list"),
    path("tail/", views.LogTailView.as_view(), name="tail"),
    path("download/", views.LogDownloadView.as_view(), name="download"),
]
