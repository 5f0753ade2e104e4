"""`{% configuration_card stack %}`: the stack page's Configuration card."""

from __future__ import annotations

from typing import Any

from django import template

from apps.core.roles import Role, rank
from apps.core.tenancy import role_of
from apps.deployments.configuration import answer_rows

register = template.Library()


@register.inclusion_tag("deployments/partials/_configuration.html", takes_context=True)
def configuration_card(context: dict, stack: Any) -> dict[str, Any]:
    """The current answers, secrets masked; Reveal and Edit for members and above."""
    user = context["request"].user
    if "stack_role" in context:  # read once by the stack page for all its buttons
        role = context["stack_role"]
    else:
        role = Role.OWNER if user.is_superuser else role_of(user, stack.tenant)
    member = role is not None and rank(role) >= rank(Role.MEMBER)
    return {
        "stack": stack,
        "rows": answer_rows(stack),
        "can_edit": member and stack.desired_state != "removed",
        "can_reveal": member,
        "csrf_token": context.get("csrf_token"),
    }
