"""WSGI entry point (HTTP only; production uses the ASGI app for websockets)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
application = get_wsgi_application()
