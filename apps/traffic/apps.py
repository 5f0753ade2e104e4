from django.apps import AppConfig


class TrafficConfig(AppConfig):
    """The frontier: HAProxy in front of the services, its certificates and ACME."""

    name = "apps.traffic"
    label = "traffic"

    def ready(self) -> None:
        from apps.traffic import (
            receivers,  # noqa: F401  (connects frontier_changed)
            tasks,  # noqa: F401  (queues certificates routes ask for)
        )
