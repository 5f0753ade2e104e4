"""`{{ value|badge_class }}`: the colour of a state or health badge (apps.deployments.rows)."""

from django import template

from apps.deployments.rows import badge_class as _badge_class

register = template.Library()


@register.filter
def badge_class(value: object) -> str:
    return _badge_class(value)
