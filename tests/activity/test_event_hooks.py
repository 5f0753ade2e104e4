"""BERTH_EVENT_HOOKS: how recorded events reach other apps without an upward import."""

from __future__ import annotations

import pytest

from apps.activity import checks, services
from apps.activity.services import record_event

pytestmark = pytest.mark.django_db

calls: list = []


def remember(event, obj) -> None:
    calls.append((event.action, obj))


def explode(event, obj) -> None:
    raise RuntimeError("hook down")


@pytest.fixture(autouse=True)
def _fresh_hooks():
    calls.clear()
    services._hook.cache_clear()
    yield
    services._hook.cache_clear()


def test_every_hook_gets_each_recorded_event(settings, tenant_a):
    settings.BERTH_EVENT_HOOKS = [f"{__name__}.remember", f"{__name__}.remember"]
    event = record_event("tenant.touch", tenant=tenant_a, obj=tenant_a)
    assert calls == [(event.action, tenant_a), (event.action, tenant_a)]


def test_a_failing_hook_never_fails_the_change(settings, tenant_a, caplog):
    settings.BERTH_EVENT_HOOKS = [f"{__name__}.explode", f"{__name__}.remember"]
    event = record_event("tenant.touch", tenant=tenant_a)
    assert event.pk is not None
    assert calls == [("tenant.touch", None)]
    assert "explode failed" in caplog.text


def test_the_default_hook_is_the_stacks_live_stream(settings):
    assert settings.BERTH_EVENT_HOOKS == ["apps.deployments.live.broadcast_event"]
    assert checks.event_hooks_importable() == []


def test_a_hook_that_does_not_import_is_refused_at_start(settings):
    settings.BERTH_EVENT_HOOKS = ["apps.deployments.live.no_such_function", "math.pi"]
    errors = checks.event_hooks_importable()
    assert [e.id for e in errors] == ["berth.E001", "berth.E002"]
    assert "no_such_function" in errors[0].msg
