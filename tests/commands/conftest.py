"""Running management commands and capturing what they print."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.core.management import call_command


@dataclass
class Output:
    out: str
    err: str


@pytest.fixture
def run():
    def run_command(*args: str, **options) -> Output:
        out, err = io.StringIO(), io.StringIO()
        call_command(*args, stdout=out, stderr=err, **options)
        return Output(out.getvalue(), err.getvalue())

    return run_command


def accounts():
    """Real accounts: without django-guardian's stand-in row for anonymous visitors."""
    from django.contrib.auth import get_user_model
    from guardian.conf import settings as guardian_settings

    return get_user_model().objects.exclude(username=guardian_settings.ANONYMOUS_USER_NAME)


@pytest.fixture(autouse=True)
def _no_admin_env(monkeypatch):
    for name in (
        "BERTH_ADMIN_USERNAME",
        "BERTH_ADMIN_EMAIL",
        "BERTH_ADMIN_PASSWORD",
        "BERTH_SITE_DOMAIN",
    ):
        monkeypatch.delenv(name, raising=False)
