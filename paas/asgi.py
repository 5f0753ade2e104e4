"""ASGI entry point: HTTP through Django, websockets through Channels' router.

Every websocket route sits behind the same stack: session and token authentication,
then the origin check (scheme, host and port; apps/accounts/channels_auth.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.accounts.channels_auth import TokenOrSessionAuthMiddlewareStack  # noqa: E402
from paas.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenOrSessionAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
