"""The alerts pages, under /alerts/."""

from django.urls import path

from apps.alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.AlertListView.as_view(), name="list"),
    path("badge/", views.AlertBadgeView.as_view(), name="badge"),
    path("<int:pk>/ack/", views.AlertAckView.as_view(), name="ack"),
    path("<int:pk>/silence/", views.AlertSilenceView.as_view(), name="silence"),
    path("silences/<int:pk>/end/", views.SilenceEndView.as_view(), name="silence-end"),
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/new/", views.RuleCreateView.as_view(), name="rule-create"),
    path("rules/<int:pk>/", views.RuleEditView.as_view(), name="rule-edit"),
    path("rules/<int:pk>/delete/", views.RuleDeleteView.as_view(), name="rule-delete"),
    path("channels/", views.ChannelListView.as_view(), name="channels"),
    path("channels/<int:pk>/", views.ChannelDetailView.as_view(), name="channel"),
    path("channels/<int:pk>/delete/", views.ChannelDeleteView.as_view(), name="channel-delete"),
]
