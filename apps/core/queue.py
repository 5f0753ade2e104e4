"""Queueing background work without turning a broker outage into a 500.

Desired state is already committed when work is queued, and the periodic reconcile
picks it up anyway; so a stopped Redis delays the work and shows a banner, it does
not fail the request.

`tenant_slot` bounds how many worker processes one tenant's work may hold at once, so a
tenant whose engine calls are slow leaves room for everyone else. A task that finds its
tenant at the bound is parked in the tenant's waiting list (one Redis list per tenant)
and sent again when one of the tenant's slots is given back: the worker goes on with
other tenants' work at once, nothing polls, and the tenant's own tasks keep their order.
"""

import json
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
#
# A caller that passes a task (ARGV[4], JSON) has it parked when no slot is free, in the
# same step: a slot given back between "full" and "parked" would otherwise wake nobody.
# The same task parked twice (the same stack's reconcile) waits once: reconciling reads
# the stack's state when it runs, so one run does the work of both. The tenant's id goes
# in the set of tenants with parked work (KEYS[3]), which `wake_parked` sweeps.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  if ARGV[4] ~= '' then
    if not redis.call('LPOS', KEYS[2], ARGV[4]) then
      redis.call('RPUSH', KEYS[2], ARGV[4])
    end
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
    redis.call('SADD', KEYS[3], ARGV[6])
  end
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# Give a slot back and take the first parked task, in one step (nil when none waits).
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('LPOP', KEYS[2])
"""

# The sweep: for a tenant whose holders are gone (given back, or expired after a killed
# worker), take as many parked tasks as it has free slots.
_WAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local woken = {}
while free > 0 do
  local item = redis.call('LPOP', KEYS[2])
  if not item then break end
  table.insert(woken, item)
  free = free - 1
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
end
return woken
"""

# A parked task outlives any wait for a slot (a day); a swept-away list is not work lost
# for good: the periodic reconcile converges every stack anyway.
PARKED_TTL_MS = 24 * 3600 * 1000


def _redis():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def slots_key(tenant_id: int) -> str:
    """The Redis key of a tenant's worker slots (per installation: one Redis may serve two)."""
    from django.conf import settings

    return f"berth:{settings.BERTH_INSTALLATION_ID}:tenant-slots:{tenant_id}"


def waiting_key(tenant_id: int) -> str:
    """The Redis list of a tenant's parked tasks, oldest first."""
    from django.conf import settings

    return f"berth:{settings.BERTH_INSTALLATION_ID}:tenant-waiting:{tenant_id}"


def parked_tenants_key() -> str:
    """The Redis set of tenants with parked tasks."""
    from django.conf import settings

    return f"berth:{settings.BERTH_INSTALLATION_ID}:tenants-waiting"


def parked(
    name: str, args: tuple | list = (), kwargs: dict | None = None, queue: str | None = None
) -> str:
    """A task as it is parked: its name, arguments (ids only) and the queue it came from
    (None: the default), as canonical JSON, so the same call parked twice is one entry."""
    return json.dumps(
        {"task": name, "args": list(args), "kwargs": kwargs or {}, "queue": queue},
        sort_keys=True,
        separators=(",", ":"),
    )


def send_parked(item: bytes | str) -> bool:
    """Send a parked task to the broker again; False (logged) when that fails, which
    loses no desired state: the periodic reconcile converges its stack."""
    # The current app is Berth's wherever Django runs (paas/__init__.py loads it first;
    # the tests fail any test that makes another app current). apps.core may not import
    # paas.celery (the import layers).
    from celery import current_app as app

    try:
        call = json.loads(item)
        app.send_task(
            call["task"],
            args=call["args"],
            kwargs=call["kwargs"],
            queue=call.get("queue"),
            retry=False,
        )
    except (OperationalError, ConnectionError, OSError, ValueError, KeyError) as exc:
        logger.warning("could not send a parked task %r: %s", item, exc)
        return False
    return True


def tenant_slot_limit() -> int:
    from django.conf import settings

    return max(1, int(settings.BERTH_TENANT_WORKER_SLOTS))


@contextmanager
def tenant_slot(tenant_id: int, *, ttl: float, park: str = "") -> Iterator[bool]:
    """Hold one of the tenant's worker slots for the block; yields False (holding nothing)
    when the tenant already holds `BERTH_TENANT_WORKER_SLOTS` of them.

    One tenant's slow engine calls (a stop waiting out a long grace period) then never
    occupy every worker. With `park` (a task, from `parked()`), a tenant at its bound has
    that task parked: the caller just returns, and the task is sent again when a slot
    is given back (by this block's end, in any worker) or by `wake_parked`. Without it
    the caller decides (a host pass skips the stack). `ttl` is the longest the block can
    last (the task's hard time limit): a killed worker's slot is given back then. With
    Redis unreachable the block runs unbounded (logged): the worker cannot be receiving
    tasks then anyway.
    """
    import redis

    key, holder = slots_key(tenant_id), uuid.uuid4().hex
    waiting = waiting_key(tenant_id)
    client = _redis()
    try:
        held = bool(
            client.eval(
                _ACQUIRE,
                3,
                key,
                waiting,
                parked_tenants_key(),
                tenant_slot_limit(),
                int(ttl * 1000),
                holder,
                park,
                PARKED_TTL_MS,
                tenant_id,
            )
        )
    except redis.RedisError as exc:
        logger.warning("tenant slots unavailable, running unbounded: %s", exc)
        held = None
    try:
        yield held is not False
    finally:
        if held:
            _give_back(client, key, waiting, holder)


def _give_back(client, key: str, waiting: str, holder: str) -> None:
    """The slot back, and the tenant's first parked task (if any) sent: it runs in the slot
    just freed unless another of the tenant's tasks takes it first (then it parks again)."""
    import redis

    try:
        item = client.eval(_RELEASE, 2, key, waiting, holder)
    except redis.RedisError as exc:  # it expires after `ttl` anyway; the sweep wakes the rest
        logger.warning("could not give back a tenant slot: %s", exc)
        return
    if item is not None:
        send_parked(item)


def wake_parked() -> int:
    """Send the parked tasks of every tenant with a free slot (beat, with the periodic
    reconcile): what a worker killed while holding a slot, or a failed send, left parked
    gets going once the slot's time is up. Returns how many were sent."""
    import redis

    client = _redis()
    sent = 0
    try:
        for raw in client.smembers(parked_tenants_key()):
            tenant_id = int(raw)
            woken = client.eval(
                _WAKE,
                3,
                slots_key(tenant_id),
                waiting_key(tenant_id),
                parked_tenants_key(),
                tenant_slot_limit(),
                tenant_id,
            )
            sent += sum(1 for item in woken if send_parked(item))
    except redis.RedisError as exc:
        logger.warning("could not wake parked tasks: %s", exc)
    return sent


# --- one at a time: a periodic pass that is already running is not started twice --------

_RELEASE_IF_MINE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextmanager
def single_flight(name: str, *, ttl: float) -> Iterator[bool]:
    """Yields True for the one caller (in any worker) running `name` now, False to the
    others while it runs. For periodic passes over a whole host: a second pass started
    while the first still runs (behind busy workers beat's triggers bunch up) would only
    repeat it, holding another worker. `ttl`: the pass's hard time limit, after which a
    killed worker's claim lapses. Redis unreachable: True (run, as without the bound).
    """
    import redis
    from django.conf import settings

    key = f"berth:{settings.BERTH_INSTALLATION_ID}:running:{name}"
    token = uuid.uuid4().hex
    client = _redis()
    try:
        mine = bool(client.set(key, token, nx=True, px=int(ttl * 1000)))
    except redis.RedisError as exc:
        logger.warning("single-flight unavailable, running %s anyway: %s", name, exc)
        mine = None
    try:
        yield mine is not False
    finally:
        if mine:
            try:
                client.eval(_RELEASE_IF_MINE, 1, key, token)
            except redis.RedisError as exc:  # it lapses after `ttl`
                logger.warning("could not end %s: %s", name, exc)
