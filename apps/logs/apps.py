from django.apps import AppConfig


class LogsConfig(AppConfig):
    """Central log aggregation: collected container logs, their search and retention."""

    name = "apps.logs"
    label = "logs"
    verbose_name = "Logs"

    def ready(self) -> None:
        from apps.logs import receivers  # noqa: F401  (connects container_removing)
