"""Events older than BERTH_EVENT_RETENTION_DAYS go, every tenant's and the platform's,
in batches; recent ones stay."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.activity import tasks
from apps.activity.models import Event
from apps.activity.services import prune_events, record_event

pytestmark = pytest.mark.django_db


def aged(days: int, **kwargs) -> Event:
    event = record_event("stack.deploy", **kwargs)
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=days))
    return event


@pytest.fixture
def history(tenant_a, tenant_b):
    """Old and recent events of two tenants and of the platform (no tenant)."""
    old = [aged(400, tenant=tenant) for tenant in (tenant_a, tenant_b, None) for _ in range(3)]
    recent = [aged(10, tenant=tenant) for tenant in (tenant_a, tenant_b, None)]
    return old, recent


def test_old_events_of_every_tenant_go_in_batches_recent_stay(history):
    old, recent = history
    kept_before = set(
        Event.objects.exclude(pk__in=[e.pk for e in old]).values_list("pk", flat=True)
    )
    assert prune_events(older_than_days=365, batch_size=2) == len(old)
    assert not Event.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert set(Event.objects.values_list("pk", flat=True)) == kept_before
    assert {e.pk for e in recent} <= kept_before


def test_one_run_may_stop_after_some_batches_and_the_next_goes_on(history):
    old, _recent = history
    assert prune_events(older_than_days=365, batch_size=2, max_batches=2) == 4
    assert prune_events(older_than_days=365, batch_size=2) == len(old) - 4
    assert prune_events(older_than_days=365, batch_size=2) == 0


def test_zero_keeps_everything(history, settings):
    settings.BERTH_EVENT_RETENTION_DAYS = 0
    total = Event.objects.count()
    assert tasks.prune_events() == 0
    assert Event.objects.count() == total


def test_the_task_reads_the_setting(history, settings):
    old, _recent = history
    settings.BERTH_EVENT_RETENTION_DAYS = 30
    assert tasks.prune_events() == len(old)
    settings.BERTH_EVENT_RETENTION_DAYS = 5
    assert tasks.prune_events() == 3  # now the 10-day-old ones too


def test_beat_runs_it():
    entry = django_settings.CELERY_BEAT_SCHEDULE["activity.prune_events"]
    assert entry["task"] == "activity.prune_events"
    assert entry["schedule"] == django_settings.BERTH_EVENT_PRUNE_SECONDS
