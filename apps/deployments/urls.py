"""Stack pages under /stacks/."""

from django.urls import path

from apps.deployments import config_views, views

app_name = "stacks"
urlpatterns = [
    path("", views.StackListView.as_view(), name="list"),
    path("new/", views.StackCreateView.as_view(), name="create"),
    path("<int:pk>/", views.StackDetailView.as_view(), name="detail"),
    path("<int:pk>/status/", views.StackStatusView.as_view(), name="status"),
    path("<int:pk>/stop/", views.StackStopView.as_view(), name="stop"),
    path("<int:pk>/start/", views.StackStartView.as_view(), name="start"),
    path("<int:pk>/restart/", views.StackRestartView.as_view(), name="restart"),
    path("<int:pk>/cancel/", views.StackCancelView.as_view(), name="cancel"),
    path("<int:pk>/remove/", views.StackRemoveView.as_view(), name="remove"),
    path("<int:pk>/upgrade/", views.StackUpgradeView.as_view(), name="upgrade"),
    path("<int:pk>/edit/", config_views.StackEditView.as_view(), name="edit"),
    path(
        "<int:pk>/answers/reveal/",
        config_views.StackRevealAnswerView.as_view(),
        name="reveal_answer",
    ),
    path(
        "<int:pk>/save-as-template/",
        views.StackSaveTemplateView.as_view(),
        name="save_template",
    ),
    path("<int:pk>/revisions/", views.StackRevisionsView.as_view(), name="revisions"),
    path("services/<int:pk>/scale/", views.ServiceScaleView.as_view(), name="scale"),
    path("<int:pk>/routes/add/", views.RouteCreateView.as_view(), name="route_add"),
    path("routes/<int:pk>/delete/", views.RouteDeleteView.as_view(), name="route_delete"),
    path("rollouts/<int:pk>/weight/", views.RolloutWeightView.as_view(), name="rollout_weight"),
    path("rollouts/<int:pk>/promote/", views.RolloutPromoteView.as_view(), name="rollout_promote"),
    path("rollouts/<int:pk>/abort/", views.RolloutAbortView.as_view(), name="rollout_abort"),
    path("containers/<int:pk>/logs/", views.ContainerLogsView.as_view(), name="container_logs"),
    path(
        "containers/<int:pk>/logs/download/",
        views.ContainerLogDownloadView.as_view(),
        name="container_logs_download",
    ),
    path("containers/<int:pk>/shell/", views.ContainerShellView.as_view(), name="shell"),
    path("containers/<int:pk>/start/", views.ContainerStartView.as_view(), name="container_start"),
    path("containers/<int:pk>/stop/", views.ContainerStopView.as_view(), name="container_stop"),
    path(
        "containers/<int:pk>/restart/",
        views.ContainerRestartView.as_view(),
        name="container_restart",
    ),
    path(
        "containers/<int:pk>/remove/", views.ContainerRemoveView.as_view(), name="container_remove"
    ),
    path("services/<int:pk>/logs/", views.ServiceLogsView.as_view(), name="service_logs"),
    path(
        "services/<int:pk>/logs/download/",
        views.ServiceLogDownloadView.as_view(),
        name="service_logs_download",
    ),
    path(
        "revisions/<int:pk>/rollback/",
        views.RevisionRollbackView.as_view(),
        name="rollback",
    ),
]
