"""The role order and the granting rule, as pure functions (no database)."""

import pytest

from apps.core.roles import RANK, Role, can_grant, rank, roles_at_least

ORDER = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]


def test_ranks_follow_viewer_member_admin_owner():
    ranks = [rank(role) for role in ORDER]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


def test_every_role_has_a_rank():
    assert set(RANK) == set(Role)


def test_rank_accepts_plain_strings():
    assert rank("owner") == rank(Role.OWNER)
    assert rank("viewer") < rank("member")


def test_rank_refuses_unknown_roles():
    with pytest.raises(ValueError):
        rank("superuser")


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.VIEWER, ["viewer", "member", "admin", "owner"]),
        (Role.MEMBER, ["member", "admin", "owner"]),
        (Role.ADMIN, ["admin", "owner"]),
        (Role.OWNER, ["owner"]),
    ],
)
def test_roles_at_least(role, expected):
    assert sorted(roles_at_least(role)) == sorted(expected)
    assert all(isinstance(r, str) for r in roles_at_least(role))


def test_roles_at_least_accepts_plain_strings():
    assert sorted(roles_at_least("admin")) == ["admin", "owner"]


@pytest.mark.parametrize("granter", [Role.VIEWER, Role.MEMBER])
@pytest.mark.parametrize("role", ORDER)
def test_viewers_and_members_grant_nothing(granter, role):
    assert not can_grant(granter, role)


@pytest.mark.parametrize(
    ("granter", "role", "allowed"),
    [
        (Role.ADMIN, Role.VIEWER, True),
        (Role.ADMIN, Role.MEMBER, True),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.OWNER, Role.VIEWER, True),
        (Role.OWNER, Role.MEMBER, True),
        (Role.OWNER, Role.ADMIN, True),
        (Role.OWNER, Role.OWNER, True),
    ],
)
def test_nobody_grants_above_their_own_role(granter, role, allowed):
    assert can_grant(granter, role) is allowed


def test_can_grant_accepts_plain_strings():
    assert can_grant("owner", "admin")
    assert not can_grant("admin", "owner")
