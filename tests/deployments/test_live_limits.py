"""The per-user share of live streams: taken with the server's slots, given back once."""

from __future__ import annotations

import threading

from apps.deployments import live_limits
from apps.deployments.live_limits import SERVER_BUSY, StreamLease
from apps.hosts.engine import streams

USER = 10_001


def test_the_user_share_is_refused_before_any_server_slot(settings):
    settings.BERTH_LIVE_STREAMS_PER_USER = 3
    first, _ = StreamLease.take(USER, 2)
    second, reason = StreamLease.take(USER, 2)
    assert second is None and "at most 3" in reason
    assert live_limits.STREAMS.held[USER] == 2
    first.give_all()
    assert USER not in live_limits.STREAMS.held


def test_a_full_server_gives_the_users_share_back(settings, monkeypatch):
    settings.BERTH_LIVE_STREAMS_PER_USER = 8
    monkeypatch.setattr(streams, "_slots", threading.BoundedSemaphore(1))
    lease, reason = StreamLease.take(USER, 2)
    assert (lease, reason) == (None, SERVER_BUSY)
    assert USER not in live_limits.STREAMS.held
    assert streams.reserve_slot(), "the one slot taken was given back"
    streams.release_slot()


def test_a_lease_gives_back_no_more_than_it_took(settings, monkeypatch):
    settings.BERTH_LIVE_STREAMS_PER_USER = 8
    monkeypatch.setattr(streams, "_slots", threading.BoundedSemaphore(3))
    lease, _ = StreamLease.take(USER, 3)
    lease.give()
    lease.give_all()
    lease.give_all()
    lease.give()
    assert USER not in live_limits.STREAMS.held
    for _ in range(3):  # a BoundedSemaphore raises when released past its size
        assert streams.reserve_slot()
    assert not streams.reserve_slot()


def test_zero_switches_the_user_bound_off(settings):
    settings.BERTH_LIVE_SOCKETS_PER_USER = 0
    assert all(live_limits.SOCKETS.take(USER) for _ in range(500))
    live_limits.SOCKETS.give(USER, 500)
    assert USER not in live_limits.SOCKETS.held
