"""Activity pages under /activity/."""

from django.urls import path

from apps.activity import views

app_name = "activity"
urlpatterns = [
    path("", views.EventListView.as_view(), name="list"),
    path("all/", views.AllEventListView.as_view(), name="all"),
]
