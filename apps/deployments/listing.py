"""What the host pass sees of a host's containers: a full list now and then, and in
between only the containers the engine's events named.

Listing every container of a host costs the engine about 1-1.6 s at 5,000 containers
(engine 20.10, 2 CPUs), whatever Berth does with the answer: a pass that lists
everything cannot be faster than that. So the pass keeps, per host and in this process,
the last listing and a change feed (engine/changes.py) opened before it was made. A
later pass takes the ids the feed named since the previous pass and lists only those
(one filtered call; none when nothing changed) over the kept listing. Everything is
listed again, and the feed opened anew, when:

- this process has no listing of the host yet (a worker started, or the host's endpoint
  changed),
- the feed broke (the engine restarted, or its connection dropped),
- more than FULL_LIST_BURST containers changed since the last pass (one full list is
  cheaper than a long id filter), or
- BERTH_RECONCILE_FULL_LIST_SECONDS passed since the last full list (the safety net for a
  stream that went silent without breaking; 0 lists everything on every pass).

Like a full list, the view is as of the moment it was taken: a change the engine reports
while a pass runs is seen by the next pass. Each worker process keeps its own listings;
the host pass runs one at a time per host (tasks.reconcile_host), so one process's view
is never written by two passes at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from apps.hosts.engine import EngineDriver, EngineError, ManagedContainer, get_engine
from apps.hosts.engine.driver import ChangeFeedReader
from apps.hosts.models import Host

log = logging.getLogger(__name__)

#: Above this many changed containers, one full list instead of an id filter.
FULL_LIST_BURST = 200
#: Hosts whose listing a process keeps (each holds one engine connection open).
MAX_KEPT_HOSTS = 64


@dataclass
class _Kept:
    endpoint: str
    feed: ChangeFeedReader
    containers: dict[str, ManagedContainer]
    listed_at: float


@dataclass(frozen=True)
class Listing:
    """The host's managed containers as of this pass, and how they were learnt."""

    containers: list[ManagedContainer]
    full: bool  # everything listed on this pass
    relisted: int = 0  # containers listed by id (an event-driven pass)


_kept: OrderedDict[int, _Kept] = OrderedDict()
_lock = threading.Lock()


def full_list_seconds() -> float:
    return float(settings.BERTH_RECONCILE_FULL_LIST_SECONDS)


def current(host: Host, engine: EngineDriver) -> Listing:
    """The host's managed containers for this pass (see the module's docstring).

    Raises EngineError like a list call: the kept listing is then dropped, and the
    next pass lists everything.
    """
    with _lock:
        kept = _kept.pop(host.pk, None)
    reason = _why_full(host, kept)
    if reason:
        if kept is not None:
            kept.feed.close()
        return _full(host, engine, reason)
    assert kept is not None
    changes = kept.feed.take()
    if changes is None:
        kept.feed.close()
        return _full(host, engine, "the event feed broke")
    ids = changes.ids(kept.containers)
    if len(ids) > FULL_LIST_BURST:
        kept.feed.close()
        return _full(host, engine, f"{len(ids)} containers changed")
    try:
        fresh = engine.list_managed_ids(ids)
    except BaseException:  # not kept: its feed must not outlive it
        kept.feed.close()
        raise
    for container_id in ids:
        kept.containers.pop(container_id, None)
    kept.containers.update((c.id, c) for c in fresh)
    _keep(host.pk, kept)
    return Listing(list(kept.containers.values()), full=False, relisted=len(ids))


def _why_full(host: Host, kept: _Kept | None) -> str:
    seconds = full_list_seconds()
    if seconds <= 0:
        return "BERTH_RECONCILE_FULL_LIST_SECONDS is 0"
    if kept is None:
        return "no listing kept in this process"
    if kept.endpoint != host.endpoint:
        return "the host's endpoint changed"
    if kept.feed.broken:
        return "the event feed broke"
    if time.monotonic() - kept.listed_at >= seconds:
        return f"{seconds:g} s since the last full list"
    return ""


def _full(host: Host, engine: EngineDriver, reason: str) -> Listing:
    """List everything; keep it with a feed opened before the list (when there can be
    one: a driver without a feed, or a feed that cannot be opened, just lists)."""
    log.debug("host %s: listing every container (%s)", host.pk, reason)
    feed = _open_feed(host) if full_list_seconds() > 0 else None
    try:
        listed = engine.list_managed()
    except BaseException:
        if feed is not None:
            feed.close()
        raise
    if feed is not None:
        _keep(host.pk, _Kept(host.endpoint, feed, {c.id: c for c in listed}, time.monotonic()))
    return Listing(listed, full=True)


def _open_feed(host: Host) -> ChangeFeedReader | None:
    feeder = get_engine(host)
    try:
        return feeder.change_feed()
    except EngineError as exc:
        feeder.close()
        log.info("no change feed for host %s (%s): every pass lists everything", host.pk, exc)
        return None


def _keep(host_id: int, kept: _Kept) -> None:
    with _lock:
        evicted = []
        replaced = _kept.get(host_id)
        if replaced is not None and replaced is not kept:  # two passes of one process
            evicted.append(replaced)
        _kept[host_id] = kept
        _kept.move_to_end(host_id)
        while len(_kept) > MAX_KEPT_HOSTS:
            evicted.append(_kept.popitem(last=False)[1])
    for old in evicted:
        old.feed.close()


def forget(host_id: int | None = None) -> None:
    """Drop the kept listing of one host (or of all), closing its feed: the next pass
    lists everything. For a host removed or changed, and for tests."""
    with _lock:
        if host_id is None:
            dropped = list(_kept.values())
            _kept.clear()
        else:
            one = _kept.pop(host_id, None)
            dropped = [one] if one else []
    for kept in dropped:
        kept.feed.close()


def pending(host_id: int) -> set[str]:
    """The container ids the host's feed named since the last pass (for tests and
    benchmarks waiting for an event to be read); empty without a kept listing."""
    with _lock:
        kept = _kept.get(host_id)
    return kept.feed.pending() if kept is not None else set()
