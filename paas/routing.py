"""Websocket routes (the protocol is in apps/deployments/WEBSOCKETS.md)."""

from django.urls import path

from apps.deployments import consumers

websocket_urlpatterns: list = [
    path("ws/stacks/<int:pk>/events/", consumers.StackEventsConsumer.as_asgi()),
    path("ws/containers/<int:pk>/logs/", consumers.LogsConsumer.as_asgi()),
    path("ws/services/<int:pk>/logs/", consumers.ServiceLogsConsumer.as_asgi()),
    path("ws/containers/<int:pk>/shell/", consumers.ShellConsumer.as_asgi()),
    path("ws/containers/<int:pk>/stats/", consumers.StatsConsumer.as_asgi()),
]
