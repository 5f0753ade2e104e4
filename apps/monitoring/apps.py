from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # A bad BERTH_METRICS_TIERS stops Berth at start-up, naming the setting.
        from apps.monitoring import tiers

        tiers.configured()
