"""The Logs page under /logs/, and the environments' retention under /logs/retention/."""

from django.urls import path

from apps.logs import views

app_name = "logs"
urlpatterns = [
    path("", views.LogListView.as_view(), name="list"),
    path("tail/", views.LogTailView.as_view(), name="tail"),
    path("download/", views.LogDownloadView.as_view(), name="download"),
    path("retention/", views.RetentionListView.as_view(), name="retention"),
    path("retention/<int:pk>/", views.RetentionEditView.as_view(), name="retention_edit"),
]
