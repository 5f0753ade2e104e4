"""Catalog pages under /catalog/."""

from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.CatalogListView.as_view(), name="list"),
    path("publish/", views.PublishView.as_view(), name="publish"),
    path("approvals/", views.ApprovalListView.as_view(), name="approvals"),
    path("<int:pk>/", views.TemplateDetailView.as_view(), name="detail"),
    path("<int:pk>/review/", views.ReviewView.as_view(), name="review"),
    path("<int:pk>/request-public/", views.RequestPublicView.as_view(), name="request_public"),
]
