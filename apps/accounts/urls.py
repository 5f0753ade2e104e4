"""Settings pages under /settings/."""

from django.urls import path

from apps.accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.ProfileView.as_view(), name="profile"),
    path("tokens/", views.TokenListView.as_view(), name="tokens"),
    path("tokens/<int:pk>/revoke/", views.TokenRevokeView.as_view(), name="token_revoke"),
]
