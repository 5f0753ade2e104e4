"""A stop grace period of 0s means "kill at once"; only a missing one is Docker's 10 s."""

from apps.deployments.containers import _capped_grace


def test_zero_grace_is_kept(settings):
    settings.BERTH_MAX_STOP_GRACE_SECONDS = 60
    assert _capped_grace(0.0) == 0


def test_missing_grace_leaves_dockers_default(settings):
    settings.BERTH_MAX_STOP_GRACE_SECONDS = 60
    assert _capped_grace(None) is None


def test_grace_is_capped(settings):
    settings.BERTH_MAX_STOP_GRACE_SECONDS = 60
    assert _capped_grace(3600.0) == 60
    assert _capped_grace(2.5) == 2
