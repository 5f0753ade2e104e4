from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The product's own pages: dashboard, tenant switcher, error pages, health banners,
    and `berth_bootstrap`. The top layer: it may use every app, none uses it."""

    name = "apps.portal"
    label = "portal"
    verbose_name = "Portal"
