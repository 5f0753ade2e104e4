"""`{% port_url host port as url %}`: a published port's address (apps.deployments.ports)."""

from django import template

from apps.deployments.ports import port_url as _port_url
from apps.deployments.ports import request_host_name

register = template.Library()


@register.simple_tag(takes_context=True)
def port_url(context, host, port) -> str:
    return _port_url(host, port, request_host_name(context.get("request"))) or ""
