"""Membership roles and their order: owner > admin > member > viewer.

Kept apart from the models so that pure policy code (and its unit tests) can use it.
"""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


RANK = {Role.VIEWER: 10, Role.MEMBER: 20, Role.ADMIN: 30, Role.OWNER: 40}


def rank(role: str) -> int:
    return RANK[Role(role)]


def roles_at_least(role: str) -> list[str]:
    """All roles that carry at least the rights of `role`."""
    return [r.value for r in Role if rank(r) >= rank(role)]


def can_grant(granter_role: str, role: str) -> bool:
    """Admins and owners manage members, but nobody grants a role above their own."""
    return rank(granter_role) >= rank(Role.ADMIN) and rank(role) <= rank(granter_role)
