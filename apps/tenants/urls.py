"""Tenant pages under /tenants/, and the invitation links under /invitations/."""

from django.urls import path

from apps.tenants import views

app_name = "tenants"
urlpatterns = [
    path("", views.TenantListView.as_view(), name="list"),
    path("new/", views.TenantCreateView.as_view(), name="create"),
    path("<slug:slug>/", views.TenantDetailView.as_view(), name="detail"),
    path("<slug:slug>/edit/", views.TenantUpdateView.as_view(), name="edit"),
    path("<slug:slug>/delete/", views.TenantDeleteView.as_view(), name="delete"),
    path("<slug:slug>/quota/", views.TenantQuotaView.as_view(), name="quota"),
    path("<slug:slug>/invite/", views.InvitationCreateView.as_view(), name="invite"),
    path(
        "<slug:slug>/environments/new/",
        views.EnvironmentCreateView.as_view(),
        name="environment_create",
    ),
    path("members/<int:pk>/role/", views.MemberRoleView.as_view(), name="member_role"),
    path("members/<int:pk>/remove/", views.MemberRemoveView.as_view(), name="member_remove"),
    path(
        "invitations/<int:pk>/revoke/",
        views.InvitationRevokeView.as_view(),
        name="invitation_revoke",
    ),
    path("environments/<int:pk>/", views.EnvironmentDetailView.as_view(), name="environment"),
    path(
        "environments/<int:pk>/edit/",
        views.EnvironmentUpdateView.as_view(),
        name="environment_edit",
    ),
    path(
        "environments/<int:pk>/delete/",
        views.EnvironmentDeleteView.as_view(),
        name="environment_delete",
    ),
]

# Mounted at /invitations/ by paas/urls.py under the "invitations" namespace: the kwarg is
# the raw token from the e-mailed link (an unknown token answers 404).
invitation_urlpatterns = [
    path("<str:token>/", views.InvitationAcceptView.as_view(), name="accept"),
]
