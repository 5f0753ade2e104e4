from django.apps import AppConfig


class AutoscalingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.autoscaling"
    verbose_name = "Autoscaling"
