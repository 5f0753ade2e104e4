"""`visible_to`: the one place that decides which tenants' rows a user may see."""

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.accounts import services as token_services
from apps.accounts.models import ApiToken
from apps.activity.models import Event
from apps.activity.services import record_event
from apps.core.roles import Role
from apps.hosts.models import Host
from apps.tenants.models import Environment, Invitation, Membership, Tenant

pytestmark = pytest.mark.django_db

TENANT_OWNED = [Tenant, Environment, Membership, Invitation, Event]


def slugs(queryset) -> set[str]:
    return set(queryset.values_list("slug", flat=True))


def env_tenants(user, min_role=Role.VIEWER, token=None) -> set[str]:
    return set(
        Environment.objects.visible_to(user, min_role, token=token).values_list(
            "tenant__slug", flat=True
        )
    )


@pytest.fixture
def both(tenant_a, tenant_b):
    return tenant_a, tenant_b


@pytest.mark.parametrize("who", ["owner", "member", "viewer"])
def test_members_see_their_tenant_only(request, both, who):
    user = request.getfixturevalue(who)
    assert slugs(Tenant.objects.visible_to(user)) == {"acme"}
    assert env_tenants(user) == {"acme"}


def test_outsider_sees_only_their_own_tenant(both, outsider):
    assert slugs(Tenant.objects.visible_to(outsider)) == {"globex"}
    assert env_tenants(outsider) == {"globex"}
    assert not Membership.objects.visible_to(outsider).filter(tenant__slug="acme").exists()
    assert not Event.objects.visible_to(outsider).filter(tenant__slug="acme").exists()


def test_user_without_membership_sees_nothing(both, make_user):
    loner = make_user("lonely")
    for model in TENANT_OWNED:
        assert not model.objects.visible_to(loner).exists(), model


def test_superuser_sees_every_tenant(both, superuser):
    assert slugs(Tenant.objects.visible_to(superuser)) == {"acme", "globex"}
    assert slugs(Tenant.objects.visible_to(superuser, Role.OWNER)) == {"acme", "globex"}
    assert env_tenants(superuser) == {"acme", "globex"}


def test_inactive_superuser_sees_nothing(both, superuser):
    superuser.is_active = False
    superuser.save()
    assert not Tenant.objects.visible_to(superuser).exists()


def test_anonymous_and_none_see_nothing(both):
    for model in TENANT_OWNED:
        assert not model.objects.visible_to(AnonymousUser()).exists(), model
        assert not model.objects.visible_to(None).exists(), model


def test_inactive_user_sees_nothing(both, owner):
    owner.is_active = False
    owner.save()
    for model in TENANT_OWNED:
        assert not model.objects.visible_to(owner).exists(), model


@pytest.mark.parametrize(
    ("who", "min_role", "visible"),
    [
        ("viewer", Role.VIEWER, True),
        ("viewer", Role.MEMBER, False),
        ("member", Role.MEMBER, True),
        ("member", Role.ADMIN, False),
        ("owner", Role.ADMIN, True),
        ("owner", Role.OWNER, True),
    ],
)
def test_min_role(request, tenant_a, who, min_role, visible):
    user = request.getfixturevalue(who)
    assert Tenant.objects.visible_to(user, min_role).exists() is visible
    assert Environment.objects.visible_to(user, min_role).exists() is visible


def test_admin_role_is_between_member_and_owner(tenant_a, member):
    Membership.objects.filter(tenant=tenant_a, user=member).update(role=Role.ADMIN)
    assert Tenant.objects.visible_to(member, Role.ADMIN).exists()
    assert not Tenant.objects.visible_to(member, Role.OWNER).exists()


@pytest.fixture
def owner_in_both(both, owner):
    """olivia owns acme and is a plain member of globex."""
    Membership.objects.create(tenant=both[1], user=owner, role=Role.MEMBER)
    return owner


def test_unbound_token_sees_all_of_the_users_tenants(owner_in_both):
    token, _ = token_services.create_token(actor=owner_in_both, name="all")
    assert slugs(Tenant.objects.visible_to(owner_in_both, token=token)) == {"acme", "globex"}


def test_tenant_bound_token_narrows_to_its_tenant(both, owner_in_both):
    token, _ = token_services.create_token(actor=owner_in_both, name="ci", tenant=both[1])
    assert slugs(Tenant.objects.visible_to(owner_in_both, token=token)) == {"globex"}
    assert env_tenants(owner_in_both, token=token) == {"globex"}
    assert env_tenants(owner_in_both, Role.ADMIN, token=token) == set()


def test_read_only_token_reads_but_sees_nothing_at_member_level(owner_in_both):
    token, _ = token_services.create_token(actor=owner_in_both, name="ro", read_only=True)
    assert slugs(Tenant.objects.visible_to(owner_in_both, token=token)) == {"acme", "globex"}
    for role in (Role.MEMBER, Role.ADMIN, Role.OWNER):
        assert not Tenant.objects.visible_to(owner_in_both, role, token=token).exists()
        assert not Environment.objects.visible_to(owner_in_both, role, token=token).exists()


def test_token_never_widens_the_users_rights(tenant_a, member):
    token, _ = token_services.create_token(actor=member, name="t", tenant=tenant_a)
    assert Tenant.objects.visible_to(member, Role.MEMBER, token=token).exists()
    assert not Tenant.objects.visible_to(member, Role.ADMIN, token=token).exists()


def test_superuser_token_bound_to_a_tenant_is_narrowed(both, superuser):
    Membership.objects.create(tenant=both[0], user=superuser, role=Role.OWNER)
    token, _ = token_services.create_token(actor=superuser, name="t", tenant=both[0])
    assert slugs(Tenant.objects.visible_to(superuser, token=token)) == {"acme"}


def test_superuser_read_only_token_cannot_write_anywhere(both, superuser):
    token, _ = token_services.create_token(actor=superuser, name="t", read_only=True)
    assert slugs(Tenant.objects.visible_to(superuser, token=token)) == {"acme", "globex"}
    assert not Tenant.objects.visible_to(superuser, Role.MEMBER, token=token).exists()


def test_platform_events_are_for_superusers_only(both, owner, superuser):
    event = record_event("host.create", actor=superuser, message="platform")
    assert not Event.objects.visible_to(owner).filter(pk=event.pk).exists()
    assert Event.objects.visible_to(superuser).filter(pk=event.pk).exists()


def test_hosts_are_for_superusers_only(both, owner, superuser):
    host = Host.objects.create(name="local", endpoint="unix:///var/run/docker.sock")
    assert not Host.objects.visible_to(owner).exists()
    assert not Host.objects.visible_to(AnonymousUser()).exists()
    assert list(Host.objects.visible_to(superuser)) == [host]
    bound, _ = token_services.create_token(actor=superuser, name="t", read_only=True)
    assert Host.objects.visible_to(superuser, token=bound).exists()
    assert not Host.objects.visible_to(superuser, Role.MEMBER, token=bound).exists()


def test_tokens_are_visible_to_their_user_only(both, owner, outsider, superuser):
    mine, _ = token_services.create_token(actor=owner, name="mine")
    token_services.create_token(actor=outsider, name="theirs")
    assert list(ApiToken.objects.visible_to(owner)) == [mine]
    assert ApiToken.objects.visible_to(superuser).count() == 2
    assert not ApiToken.objects.visible_to(AnonymousUser()).exists()
