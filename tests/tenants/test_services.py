"""The tenant service layer: every rule about tenants, members and invitations."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.accounts import services as token_services
from apps.accounts.models import ApiToken, find_token
from apps.activity.models import Event
from apps.core.roles import Role
from apps.core.tenancy import require_role, role_of
from apps.tenants import services
from apps.tenants.models import Environment, Invitation, Membership, Tenant, hash_secret

pytestmark = pytest.mark.django_db


def error_fields(excinfo) -> set[str]:
    return set(excinfo.value.message_dict)


def membership(tenant, user) -> Membership:
    return Membership.objects.get(tenant=tenant, user=user)


def make_admin(tenant, user) -> Membership:
    found = membership(tenant, user)
    found.role = Role.ADMIN
    found.save()
    return found


# --- create_tenant ------------------------------------------------------------------------


def test_create_tenant_makes_default_environments_owner_and_event(owner):
    tenant = services.create_tenant(actor=owner, slug="initech", name="Initech")
    envs = set(Environment.objects.filter(tenant=tenant).values_list("slug", flat=True))
    assert envs == {"dev", "staging", "prod"}
    assert membership(tenant, owner).role == Role.OWNER
    assert Membership.objects.filter(tenant=tenant).count() == 1
    event = Event.objects.get(action="tenant.create", tenant=tenant)
    assert event.actor == owner
    assert event.object_id == str(tenant.pk)


def test_create_tenant_name_defaults_to_slug(owner):
    assert services.create_tenant(actor=owner, slug="hooli").name == "hooli"


def test_create_tenant_for_another_owner(superuser, owner):
    tenant = services.create_tenant(actor=superuser, slug="hooli", owner=owner)
    assert membership(tenant, owner).role == Role.OWNER
    assert not Membership.objects.filter(tenant=tenant, user=superuser).exists()


def test_duplicate_slug_is_refused_on_the_slug_field(tenant_a, outsider):
    with pytest.raises(ValidationError) as excinfo:
        services.create_tenant(actor=outsider, slug="acme", name="Copycat")
    assert "slug" in error_fields(excinfo)
    assert Tenant.objects.filter(slug="acme").count() == 1
    assert not Membership.objects.filter(user=outsider).exists()


@pytest.mark.parametrize("slug", ["", "Bad Slug", "UPPER", "-lead", "trail-", "x" * 41, "a_b"])
def test_bad_slug_is_refused_on_the_slug_field(owner, slug):
    with pytest.raises(ValidationError) as excinfo:
        services.create_tenant(actor=owner, slug=slug, name="Whatever")
    assert "slug" in error_fields(excinfo)
    assert not Tenant.objects.exists()
    assert not Event.objects.exists()


# --- update / delete tenant -----------------------------------------------------------------


def test_update_tenant_needs_admin(tenant_a, owner, member, outsider):
    for user in (member, outsider):
        with pytest.raises(PermissionDenied):
            services.update_tenant(actor=user, tenant=tenant_a, name="Pwned")
    services.update_tenant(actor=owner, tenant=tenant_a, name="Acme 2", description="d")
    tenant_a.refresh_from_db()
    assert (tenant_a.name, tenant_a.description) == ("Acme 2", "d")
    assert Event.objects.filter(action="tenant.update", tenant=tenant_a).exists()


def test_update_tenant_refuses_an_empty_name(tenant_a, owner):
    with pytest.raises(ValidationError) as excinfo:
        services.update_tenant(actor=owner, tenant=tenant_a, name="")
    assert "name" in error_fields(excinfo)


def test_delete_tenant_needs_owner(tenant_a, owner, member):
    make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.delete_tenant(actor=member, tenant=tenant_a)
    services.delete_tenant(actor=owner, tenant=tenant_a)
    assert not Tenant.objects.filter(slug="acme").exists()
    assert Event.objects.filter(action="tenant.delete", tenant=None).exists()


# --- environments ---------------------------------------------------------------------------


def test_create_environment_needs_admin_and_a_unique_slug(tenant_a, owner, member, outsider):
    for user in (member, outsider):
        with pytest.raises(PermissionDenied):
            services.create_environment(actor=user, tenant=tenant_a, slug="qa")
    env = services.create_environment(actor=owner, tenant=tenant_a, slug="qa", name="QA")
    assert env.tenant == tenant_a
    assert Event.objects.filter(action="environment.create", object_id=str(env.pk)).exists()
    with pytest.raises(ValidationError) as excinfo:
        services.create_environment(actor=owner, tenant=tenant_a, slug="qa")
    assert "slug" in error_fields(excinfo)


def test_same_environment_slug_in_two_tenants_is_fine(tenant_a, tenant_b, owner, outsider):
    assert Environment.objects.filter(slug="prod").count() == 2


def test_create_environment_refuses_a_bad_slug(tenant_a, owner):
    with pytest.raises(ValidationError) as excinfo:
        services.create_environment(actor=owner, tenant=tenant_a, slug="Not OK")
    assert "slug" in error_fields(excinfo)


def test_delete_environment_keeps_the_last_one(tenant_a, owner, member):
    envs = list(Environment.objects.filter(tenant=tenant_a))
    with pytest.raises(PermissionDenied):
        services.delete_environment(actor=member, environment=envs[0])
    for env in envs[:-1]:
        services.delete_environment(actor=owner, environment=env)
    with pytest.raises(ValidationError) as excinfo:
        services.delete_environment(actor=owner, environment=envs[-1])
    assert "environment" in error_fields(excinfo)
    assert Environment.objects.filter(tenant=tenant_a).count() == 1


def test_update_environment_needs_admin(tenant_a, owner, viewer):
    env = Environment.objects.filter(tenant=tenant_a).first()
    with pytest.raises(PermissionDenied):
        services.update_environment(actor=viewer, environment=env, name="x")
    services.update_environment(actor=owner, environment=env, name="Renamed")
    env.refresh_from_db()
    assert env.name == "Renamed"


# --- roles ---------------------------------------------------------------------------------


def test_owner_changes_a_role_and_an_event_is_recorded(tenant_a, owner, member):
    services.change_role(actor=owner, membership=membership(tenant_a, member), role=Role.ADMIN)
    assert membership(tenant_a, member).role == Role.ADMIN
    assert Event.objects.filter(action="membership.role", tenant=tenant_a).exists()


def test_admin_cannot_grant_owner(tenant_a, member, viewer):
    make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=member, membership=membership(tenant_a, viewer), role=Role.OWNER)
    assert membership(tenant_a, viewer).role == Role.VIEWER


def test_admin_cannot_promote_themselves_to_owner(tenant_a, member):
    admin = make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=member, membership=admin, role=Role.OWNER)
    assert membership(tenant_a, member).role == Role.ADMIN


def test_admin_cannot_demote_an_owner(tenant_a, owner, member):
    make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=member, membership=membership(tenant_a, owner), role=Role.VIEWER)
    assert membership(tenant_a, owner).role == Role.OWNER


def test_admin_may_grant_up_to_admin(tenant_a, member, viewer):
    make_admin(tenant_a, member)
    services.change_role(actor=member, membership=membership(tenant_a, viewer), role=Role.ADMIN)
    assert membership(tenant_a, viewer).role == Role.ADMIN


@pytest.mark.parametrize("who", ["member", "viewer", "outsider"])
def test_non_admins_change_no_roles(request, tenant_a, tenant_b, owner, who):
    user = request.getfixturevalue(who)
    target = membership(tenant_a, owner)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=user, membership=target, role=Role.VIEWER)
    own = Membership.objects.filter(user=user, tenant=tenant_a).first()
    if own is not None:
        with pytest.raises(PermissionDenied):
            services.change_role(actor=user, membership=own, role=Role.OWNER)
        assert membership(tenant_a, user).role == own.role


def test_last_owner_cannot_be_demoted(tenant_a, owner):
    with pytest.raises(ValidationError) as excinfo:
        services.change_role(actor=owner, membership=membership(tenant_a, owner), role="admin")
    assert "role" in error_fields(excinfo)
    assert membership(tenant_a, owner).role == Role.OWNER


def test_an_owner_can_step_down_when_another_owner_remains(tenant_a, owner, member):
    services.change_role(actor=owner, membership=membership(tenant_a, member), role=Role.OWNER)
    services.change_role(actor=owner, membership=membership(tenant_a, owner), role=Role.ADMIN)
    assert membership(tenant_a, owner).role == Role.ADMIN


def test_unknown_role_is_refused_on_the_role_field(tenant_a, owner, member):
    with pytest.raises(ValidationError) as excinfo:
        services.change_role(actor=owner, membership=membership(tenant_a, member), role="god")
    assert "role" in error_fields(excinfo)


# --- removing members ------------------------------------------------------------------------


def test_remove_member_revokes_their_tenant_bound_tokens(tenant_a, tenant_b, owner, member):
    Membership.objects.create(tenant=tenant_b, user=member, role=Role.MEMBER)
    bound, bound_raw = token_services.create_token(actor=member, name="acme", tenant=tenant_a)
    other, other_raw = token_services.create_token(actor=member, name="globex", tenant=tenant_b)
    unbound, unbound_raw = token_services.create_token(actor=member, name="all")
    assert find_token(bound_raw) == bound

    services.remove_member(actor=owner, membership=membership(tenant_a, member))

    assert not Membership.objects.filter(tenant=tenant_a, user=member).exists()
    assert find_token(bound_raw) is None
    assert ApiToken.objects.get(pk=bound.pk).revoked_at is not None
    assert find_token(other_raw) == other
    assert find_token(unbound_raw) == unbound
    assert not Tenant.objects.visible_to(member, token=unbound).filter(pk=tenant_a.pk).exists()
    event = Event.objects.get(action="membership.remove", tenant=tenant_a)
    assert event.actor == owner


def test_a_member_may_leave(tenant_a, member):
    services.remove_member(actor=member, membership=membership(tenant_a, member))
    assert not Membership.objects.filter(tenant=tenant_a, user=member).exists()


def test_members_cannot_remove_others(tenant_a, member, viewer, outsider, tenant_b):
    for actor in (member, outsider):
        with pytest.raises(PermissionDenied):
            services.remove_member(actor=actor, membership=membership(tenant_a, viewer))
    assert Membership.objects.filter(tenant=tenant_a, user=viewer).exists()


def test_admin_cannot_remove_an_owner(tenant_a, owner, member):
    make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.remove_member(actor=member, membership=membership(tenant_a, owner))
    assert membership(tenant_a, owner).role == Role.OWNER


def test_last_owner_cannot_leave(tenant_a, owner):
    with pytest.raises(ValidationError) as excinfo:
        services.remove_member(actor=owner, membership=membership(tenant_a, owner))
    assert "role" in error_fields(excinfo)
    assert Membership.objects.filter(tenant=tenant_a, user=owner).exists()


# --- invitations -----------------------------------------------------------------------------


@pytest.fixture
def invitee(make_user):
    return make_user("nina", email="nina@example.test")


def test_invite_and_accept(tenant_a, owner, invitee):
    invitation, raw = services.invite(actor=owner, tenant=tenant_a, email="nina@example.test")
    assert invitation.token_hash == hash_secret(raw)
    assert raw not in str(Invitation.objects.filter(pk=invitation.pk).values().first())
    assert Event.objects.filter(action="invitation.create", tenant=tenant_a).exists()

    joined = services.accept_invitation(user=invitee, raw_token=raw)

    assert (joined.tenant, joined.user, joined.role) == (tenant_a, invitee, Role.MEMBER)
    invitation.refresh_from_db()
    assert invitation.status == "accepted"
    assert invitation.accepted_by == invitee
    assert Event.objects.filter(action="invitation.accept", tenant=tenant_a).exists()


def test_invitation_gives_the_invited_role(tenant_a, owner, invitee):
    _, raw = services.invite(actor=owner, tenant=tenant_a, email=invitee.email, role="viewer")
    assert services.accept_invitation(user=invitee, raw_token=raw).role == Role.VIEWER


def test_invitation_is_single_use(tenant_a, owner, invitee, make_user):
    _, raw = services.invite(actor=owner, tenant=tenant_a, email=invitee.email)
    services.accept_invitation(user=invitee, raw_token=raw)
    services.remove_member(actor=owner, membership=membership(tenant_a, invitee))
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=invitee, raw_token=raw)
    assert "token" in error_fields(excinfo)
    assert not Membership.objects.filter(tenant=tenant_a, user=invitee).exists()


def test_expired_invitation_is_refused(tenant_a, owner, invitee):
    invitation, raw = services.invite(actor=owner, tenant=tenant_a, email=invitee.email)
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=invitee, raw_token=raw)
    assert "token" in error_fields(excinfo)
    assert "expired" in str(excinfo.value)
    assert not Membership.objects.filter(tenant=tenant_a, user=invitee).exists()


def test_invitation_expires_after_the_configured_days(tenant_a, owner, settings):
    invitation, _ = services.invite(actor=owner, tenant=tenant_a, email="x@example.test")
    expected = timezone.now() + timedelta(days=settings.BERTH_INVITATION_DAYS)
    assert abs((invitation.expires_at - expected).total_seconds()) < 60


def test_invitation_is_bound_to_the_invited_address(tenant_a, owner, invitee, outsider):
    invitation, raw = services.invite(actor=owner, tenant=tenant_a, email=invitee.email)
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=outsider, raw_token=raw)
    assert "email" in error_fields(excinfo)
    assert not Membership.objects.filter(tenant=tenant_a, user=outsider).exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"
    services.accept_invitation(user=invitee, raw_token=raw)


def test_user_without_email_cannot_accept(tenant_a, owner, make_user):
    nobody = make_user("noemail", email="")
    _, raw = services.invite(actor=owner, tenant=tenant_a, email="someone@example.test")
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=nobody, raw_token=raw)
    assert "email" in error_fields(excinfo)


def test_invited_address_matches_case_insensitively(tenant_a, owner, make_user):
    user = make_user("carla", email="carla@example.test")
    _, raw = services.invite(actor=owner, tenant=tenant_a, email="  Carla@EXAMPLE.test ")
    assert services.accept_invitation(user=user, raw_token=raw).tenant == tenant_a


def test_revoked_invitation_is_refused(tenant_a, owner, invitee):
    invitation, raw = services.invite(actor=owner, tenant=tenant_a, email=invitee.email)
    services.revoke_invitation(actor=owner, invitation=invitation)
    assert Event.objects.filter(action="invitation.revoke", tenant=tenant_a).exists()
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=invitee, raw_token=raw)
    assert "token" in error_fields(excinfo)
    with pytest.raises(ValidationError):
        services.revoke_invitation(actor=owner, invitation=invitation)


def test_only_admins_revoke_invitations(tenant_a, owner, member, outsider, tenant_b):
    invitation, _ = services.invite(actor=owner, tenant=tenant_a, email="x@example.test")
    for user in (member, outsider):
        with pytest.raises(PermissionDenied):
            services.revoke_invitation(actor=user, invitation=invitation)
    invitation.refresh_from_db()
    assert invitation.status == "pending"


@pytest.mark.parametrize("raw", ["", "nope", "x" * 500, "berth_" + "a" * 40])
def test_unknown_invitation_token_is_refused(tenant_a, invitee, raw):
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=invitee, raw_token=raw)
    assert "token" in error_fields(excinfo)


def test_existing_member_cannot_be_invited_again(tenant_a, owner, member):
    with pytest.raises(ValidationError) as excinfo:
        services.invite(actor=owner, tenant=tenant_a, email=member.email.upper())
    assert "email" in error_fields(excinfo)


def test_accepting_twice_as_member_is_refused(tenant_a, owner, member):
    _, raw = services.invite(actor=owner, tenant=tenant_a, email="other@example.test")
    member.email = "other@example.test"
    member.save()
    with pytest.raises(ValidationError) as excinfo:
        services.accept_invitation(user=member, raw_token=raw)
    assert "token" in error_fields(excinfo)
    assert membership(tenant_a, member).role == Role.MEMBER


def test_invite_with_a_role_above_your_own_is_refused(tenant_a, member):
    make_admin(tenant_a, member)
    with pytest.raises(PermissionDenied):
        services.invite(actor=member, tenant=tenant_a, email="boss@example.test", role="owner")
    assert not Invitation.objects.exists()
    invitation, _ = services.invite(
        actor=member, tenant=tenant_a, email="peer@example.test", role="admin"
    )
    assert invitation.role == Role.ADMIN


@pytest.mark.parametrize("who", ["member", "viewer", "outsider"])
def test_non_admins_cannot_invite(request, tenant_a, tenant_b, who):
    user = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        services.invite(actor=user, tenant=tenant_a, email="x@example.test", role="viewer")
    assert not Invitation.objects.exists()


def test_invite_refuses_unknown_role_and_bad_email(tenant_a, owner):
    with pytest.raises(ValidationError) as excinfo:
        services.invite(actor=owner, tenant=tenant_a, email="x@example.test", role="god")
    assert "role" in error_fields(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        services.invite(actor=owner, tenant=tenant_a, email="not-an-address")
    assert "email" in error_fields(excinfo)
    assert not Invitation.objects.exists()


# --- require_role / role_of ----------------------------------------------------------------


def test_require_role(tenant_a, owner, member, viewer, outsider, superuser):
    assert require_role(owner, tenant_a, Role.OWNER) == Role.OWNER
    assert require_role(member, tenant_a, Role.VIEWER) == Role.MEMBER
    assert require_role(superuser, tenant_a, Role.OWNER) == Role.OWNER
    with pytest.raises(PermissionDenied):
        require_role(viewer, tenant_a, Role.MEMBER)
    with pytest.raises(PermissionDenied):
        require_role(member, tenant_a, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        require_role(outsider, tenant_a, Role.VIEWER)


def test_require_role_refuses_inactive_and_anonymous_users(tenant_a, owner, superuser):
    with pytest.raises(PermissionDenied):
        require_role(AnonymousUser(), tenant_a, Role.VIEWER)
    for user in (owner, superuser):
        user.is_active = False
        user.save()
        with pytest.raises(PermissionDenied):
            require_role(user, tenant_a, Role.VIEWER)


def test_role_of(tenant_a, owner, viewer, outsider):
    assert role_of(owner, tenant_a) == Role.OWNER
    assert role_of(viewer, tenant_a) == Role.VIEWER
    assert role_of(outsider, tenant_a) is None
    assert role_of(AnonymousUser(), tenant_a) is None


# --- tokens stop at once ---------------------------------------------------------------------


def test_deactivated_users_tokens_stop_working(tenant_a, member):
    _, raw = token_services.create_token(actor=member, name="t", tenant=tenant_a)
    assert find_token(raw) is not None
    member.is_active = False
    member.save()
    assert find_token(raw) is None


def test_token_cannot_be_bound_to_a_foreign_tenant(tenant_a, tenant_b, outsider):
    with pytest.raises(PermissionDenied):
        token_services.create_token(actor=outsider, name="t", tenant=tenant_a)
    assert not ApiToken.objects.filter(tenant=tenant_a).exists()


def test_an_environment_with_stacks_cannot_be_deleted(tenant_a, owner):
    """Its stacks' containers would run on with nothing to manage them."""
    from apps.deployments.models import Stack

    env = tenant_a.environments.order_by("pk").first()
    Stack.objects.create(tenant=tenant_a, environment=env, name="web")
    with pytest.raises(ValidationError, match="still has 1 stack"):
        services.delete_environment(actor=owner, environment=env)
    assert tenant_a.environments.filter(pk=env.pk).exists()


def test_deleting_a_tenant_leaves_a_retirement_and_a_platform_event(tenant_a, owner):
    from apps.activity.models import Event
    from apps.tenants.models import RetiredTenant, Tenant

    tenant_id = tenant_a.pk
    retired = services.delete_tenant(actor=owner, tenant=tenant_a)
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert RetiredTenant.objects.get(pk=retired.pk).tenant_id == tenant_id
    event = Event.objects.get(action="tenant.delete")
    assert event.tenant is None and event.data["tenant_id"] == tenant_id
    with pytest.raises(ValidationError, match="still being removed"):
        services.create_tenant(actor=owner, slug="acme", name="Again")
