"""A misspelt BERTH_EVENT_HOOKS entry would only log a warning per event; refuse it at
start instead (`manage.py check`, and `migrate`, which `make run` runs first)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string


@checks.register()
def event_hooks_importable(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    for path in settings.BERTH_EVENT_HOOKS:
        try:
            hook = import_string(path)
        except ImportError as exc:
            errors.append(checks.Error(f"BERTH_EVENT_HOOKS: {exc}", id="berth.E001"))
            continue
        if not callable(hook):
            errors.append(
                checks.Error(f"BERTH_EVENT_HOOKS: {path} is not callable.", id="berth.E002")
            )
    return errors
