"""Queueing background work without turning a broker outage into a 500.

Desired state is already committed when work is queued, and the periodic reconcile
picks it up anyway; so a stopped Redis delays the work and shows a banner, it does
not fail the request.

`tenant_slot` bounds how many worker processes one tenant's work may hold at once, so a
tenant whose engine calls are slow leaves room for everyone else.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def enqueue(task, *args, **kwargs) -> bool:
    """Send `task` now; False (and a log line) when the broker cannot be reached."""
    try:
        task.apply_async(args=args, kwargs=kwargs, retry=False)
    except (OperationalError, ConnectionError, OSError) as exc:
        logger.warning("could not queue %s%s: %s", task.name, args, exc)
        return False
    return True


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """Queue `task` once the surrounding transaction commits (ids only, never objects)."""
    transaction.on_commit(lambda: enqueue(task, *args, **kwargs))


# --- fairness: a bound on the worker slots one key (a tenant) may hold ------------------

# One atomic step: drop holders whose time is up (a worker killed by its hard time limit
# never releases), then take a slot if fewer than the limit are held. The server's clock
# decides, so workers on several machines agree.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


def _redis():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def slots_key(tenant_id: int) -> str:
    """The Redis key of a tenant's worker slots (per installation: one Redis may serve two)."""
    from django.conf import settings

    return f"berth:{settings.BERTH_INSTALLATION_ID}:tenant-slots:{tenant_id}"


def tenant_slot_limit() -> int:
    from django.conf import settings

    return max(1, int(settings.BERTH_TENANT_WORKER_SLOTS))


@contextmanager
def tenant_slot(tenant_id: int, *, ttl: float) -> Iterator[bool]:
    """Hold one of the tenant's worker slots for the block; yields False (holding nothing)
    when the tenant already holds `BERTH_TENANT_WORKER_SLOTS` of them.

    One tenant's slow engine calls (a stop waiting out a long grace period) then never
    occupy every worker: the caller re-queues its task instead of running it. `ttl` is
    the longest the block can last (the task's hard time limit): a killed worker's slot is
    given back then. With Redis unreachable the block runs unbounded (logged): the
    worker cannot be receiving tasks then anyway.
    """
    import redis

    key, holder = slots_key(tenant_id), uuid.uuid4().hex
    client = _redis()
    try:
        held = bool(client.eval(_ACQUIRE, 1, key, tenant_slot_limit(), int(ttl * 1000), holder))
    except redis.RedisError as exc:
        logger.warning("tenant slots unavailable, running unbounded: %s", exc)
        held = None
    try:
        yield held is not False
    finally:
        if held:
            try:
                client.zrem(key, holder)
            except redis.RedisError as exc:  # it expires after `ttl` anyway
                logger.warning("could not give back a tenant slot: %s", exc)
