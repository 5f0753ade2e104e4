"""Recording a credential's use costs one write a minute, not one per request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.authentication import LAST_USED_RESOLUTION, touch_last_used
from apps.accounts.models import ApiToken
from apps.accounts.services import create_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_first_use_is_written(owner, django_assert_num_queries):
    token, _ = create_token(actor=owner, name="ci")
    with django_assert_num_queries(1):
        assert touch_last_used(token) is True
    assert ApiToken.objects.get(pk=token.pk).last_used_at == token.last_used_at


def test_use_within_the_resolution_writes_nothing(owner, django_assert_num_queries):
    token, _ = create_token(actor=owner, name="ci")
    touch_last_used(token)
    recorded = ApiToken.objects.get(pk=token.pk)
    with django_assert_num_queries(0):
        assert touch_last_used(recorded) is False
    assert ApiToken.objects.get(pk=token.pk).last_used_at == recorded.last_used_at


def test_use_after_the_resolution_is_written_again(owner):
    token, _ = create_token(actor=owner, name="ci")
    old = timezone.now() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    token.refresh_from_db()
    assert touch_last_used(token) is True
    assert ApiToken.objects.get(pk=token.pk).last_used_at > old


def test_requests_arriving_together_write_once(owner):
    """Two requests read the same stale value; the conditional update lets one write."""
    token, _ = create_token(actor=owner, name="ci")
    first, second = ApiToken.objects.get(pk=token.pk), ApiToken.objects.get(pk=token.pk)
    assert touch_last_used(first) is True
    assert touch_last_used(second) is False
    assert second.last_used_at is not None
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first.last_used_at
