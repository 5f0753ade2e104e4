"""Robot accounts: the secret is shown once and stored hashed; expiry, revocation and
scope decide what a robot may do; only tenant admins manage them."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.activity.models import Event
from apps.registry import services
from apps.registry.models import RobotAccount
from apps.registry.token import credentials
from apps.tenants.models import hash_secret

pytestmark = pytest.mark.django_db


def make(owner, tenant, **extra):
    return services.create_robot(actor=owner, tenant=tenant, name=extra.pop("name", "ci"), **extra)


def test_secret_is_returned_once_and_only_its_hash_is_stored(tenant_a, owner):
    robot, secret = make(owner, tenant_a, scope="push", expires_days=30)
    assert secret.startswith(credentials.SECRET_PREFIX) and len(secret) > 40
    stored = RobotAccount.objects.get(pk=robot.pk)
    assert stored.secret_hash == hash_secret(secret)
    assert secret not in str(RobotAccount.objects.filter(pk=robot.pk).values().first())
    assert robot.username == "robot$acme+ci"
    assert Event.objects.filter(action="registry.robot.create", tenant=tenant_a).exists()


def test_find_robot_checks_the_secret_and_records_use(tenant_a, owner):
    robot, secret = make(owner, tenant_a)
    assert credentials.find_robot("robot$acme+ci", "berthrobot_wrong") is None
    assert credentials.find_robot("robot$globex+ci", secret) is None
    assert credentials.find_robot("ci", secret) is None
    found = credentials.find_robot("robot$acme+ci", secret)
    assert found == robot
    assert RobotAccount.objects.get(pk=robot.pk).last_used_at is not None


def test_expired_robot_is_refused(tenant_a, owner):
    robot, secret = make(owner, tenant_a, expires_days=1)
    RobotAccount.objects.filter(pk=robot.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert credentials.find_robot(robot.username, secret) is None
    assert RobotAccount.objects.get(pk=robot.pk).status == "expired"


def test_revoked_robot_is_refused_at_once(tenant_a, owner):
    robot, secret = make(owner, tenant_a)
    assert credentials.find_robot(robot.username, secret) is not None
    services.revoke_robot(actor=owner, robot=robot)
    assert credentials.find_robot(robot.username, secret) is None
    assert RobotAccount.objects.get(pk=robot.pk).status == "revoked"


def test_scope_limits_actions_and_repositories(tenant_a, owner):
    puller, _ = make(owner, tenant_a, name="puller")
    pusher, _ = make(owner, tenant_a, name="pusher", scope="push", repositories="web, api")
    assert credentials.robot_allows(puller, "acme/web", "pull")
    assert not credentials.robot_allows(puller, "acme/web", "push")
    assert credentials.robot_allows(pusher, "acme/web", "push")
    assert credentials.robot_allows(pusher, "acme/api", "pull")
    assert not credentials.robot_allows(pusher, "acme/db", "pull")
    assert not credentials.robot_allows(pusher, "globex/web", "pull")
    assert not credentials.robot_allows(puller, "globex/web", "pull")
    assert pusher.repositories == ["api", "web"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "CI!"}, "name"),
        ({"name": ""}, "name"),
        ({"scope": "delete"}, "scope"),
        ({"expires_days": 0}, "expires_days"),
        ({"expires_days": 10_000}, "expires_days"),
        ({"repositories": ["Bad Name"]}, "repositories"),
    ],
)
def test_bad_input_names_the_field(tenant_a, owner, fields, error):
    with pytest.raises(ValidationError) as caught:
        services.create_robot(actor=owner, tenant=tenant_a, **{"name": "ci", **fields})
    assert error in caught.value.message_dict


def test_duplicate_name_is_a_field_error(tenant_a, owner):
    make(owner, tenant_a)
    with pytest.raises(ValidationError) as caught:
        make(owner, tenant_a)
    assert "already" in caught.value.message_dict["name"][0]


def test_members_and_outsiders_cannot_manage_robots(tenant_a, tenant_b, owner, member, outsider):
    with pytest.raises(PermissionDenied):
        services.create_robot(actor=member, tenant=tenant_a, name="ci")
    with pytest.raises(PermissionDenied):
        services.create_robot(actor=outsider, tenant=tenant_a, name="ci")
    robot, _ = make(owner, tenant_a)
    with pytest.raises(PermissionDenied):
        services.revoke_robot(actor=member, robot=robot)
    assert RobotAccount.objects.get(pk=robot.pk).revoked_at is None


def test_robot_use_is_written_at_most_once_a_minute(tenant_a, owner, django_assert_num_queries):
    """Every token request of a CI job finds the robot; only the first in a minute writes."""
    robot, secret = make(owner, tenant_a)
    first = credentials.find_robot(robot.username, secret)
    recorded = RobotAccount.objects.get(pk=robot.pk).last_used_at
    assert recorded == first.last_used_at
    with django_assert_num_queries(1):  # the lookup, no update
        again = credentials.find_robot(robot.username, secret)
    assert again.last_used_at == recorded
    assert RobotAccount.objects.get(pk=robot.pk).last_used_at == recorded
    stale = timezone.now() - timedelta(minutes=2)
    RobotAccount.objects.filter(pk=robot.pk).update(last_used_at=stale)
    with django_assert_num_queries(2):  # the lookup and the update
        credentials.find_robot(robot.username, secret)
    assert RobotAccount.objects.get(pk=robot.pk).last_used_at > stale
