"""`{% object_charts obj %}`: an object's charts on its own page (stack, host);
`{% host_disk host %}`: the disk probe's newest figures on the host page."""

from __future__ import annotations

from django import template
from django.db.models import Model

from apps.monitoring import charts
from apps.monitoring.models import HostDisk
from apps.monitoring.views import chart_url, link

register = template.Library()


@register.inclusion_tag("monitoring/charts.html")
def object_charts(obj: Model, range_name: str = charts.DEFAULT_RANGE) -> dict:
    return {
        "data_url": chart_url(obj),
        "range": range_name,
        "ranges": list(charts.RANGES),
        "more": link(obj),
    }


@register.inclusion_tag("monitoring/partials/_host_disk.html")
def host_disk(host: Model) -> dict:
    return {"disk": HostDisk.objects.filter(host=host).first()}


@register.simple_tag
def monitoring_link(obj: Model) -> str:
    """The Monitoring page of `obj` (a container, service, stack ...)."""
    return link(obj)
