from django.apps import AppConfig


class LogsConfig(AppConfig):
    """Central log aggregation: collected container logs, their search and retention."""

    name = "apps.logs"
    label = "logs"
    verbose_name = "Logs"
