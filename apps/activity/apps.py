from django.apps import AppConfig


class ActivityConfig(AppConfig):
    name = "apps.activity"
    label = "activity"
    verbose_name = "Activity"

    def ready(self) -> None:
        from apps.activity import checks  # noqa: F401 - registers the system check
