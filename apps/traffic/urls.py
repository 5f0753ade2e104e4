"""Pages under /traffic/: the frontier's (platform admins only) and a tenant's
certificates (its members; viewers read)."""

from django.urls import path

from apps.traffic import views, views_certificates

app_name = "traffic"
urlpatterns = [
    path("frontier/", views.FrontierStatusView.as_view(), name="frontier"),
    path("frontier/apply/", views.FrontierApplyView.as_view(), name="frontier_apply"),
    path(
        "certificates/",
        views_certificates.CertificateListView.as_view(),
        name="certificates",
    ),
    path(
        "certificates/<int:pk>/delete/",
        views_certificates.CertificateDeleteView.as_view(),
        name="certificate_delete",
    ),
]
