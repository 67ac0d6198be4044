"""``RedisLeaseStore``: the lease store shared by every proxy replica, in one Redis.

Owns: the Redis layout and the Lua scripts that keep each rule of :mod:`.leases` atomic across
replicas, plus one pub/sub listener per replica that turns every change into a local wake-up.

Layout, under ``prefix``:

- ``queue``: a list of tickets, oldest first; ``ticket:<t>``: a key per queued ticket, with a TTL;
  a ticket whose key has expired (its replica died) is dropped by the next script that reads the queue.
- ``lease:<url>``: ``"<ticket> <token>"`` with a TTL; ``fence``: the fencing-token counter.
- ``changed``: the pub/sub channel every release, leave, grant and expiry found is published on.

A lease that expires on its own is not published (Redis does not tell without keyspace
notifications, which managed Redis often forbids); instead :meth:`RedisLeaseStore.poll` returns
the time to the first such expiry and waiters re-check then, once, not in a loop.
Keys are built inside the scripts, so this needs one Redis (or a primary), not a Cluster.
Must not: know about clients, health or the upstream protocol (``UPSTREAM_PROTOCOL.md`` 5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Collection, Sequence
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..errors import LeaseStoreUnavailable
from ..tasks import stop_task
from .store import DEFAULT_LEASE_TTL_S, ChangeSignal, Grant, QueueFull, StoreSnapshot, Waiting

__all__ = ["DEFAULT_REDIS_PREFIX", "DEFAULT_REDIS_TIMEOUT_S", "RedisLeaseStore"]

logger = logging.getLogger("asgi_audio_proxy.leases_redis")
#: every key of the store starts with this; give each deployment its own
DEFAULT_REDIS_PREFIX = "asgi_audio_proxy:"
#: a lost pub/sub connection is retried this often; waiters fall back on their retry time meanwhile
_RESUBSCRIBE_S = 1.0
#: a Redis call answers in milliseconds; one that takes seconds is a store that is gone (a host
#: that accepts the connection and never answers would otherwise hold its session forever)
DEFAULT_REDIS_TIMEOUT_S = 2.0

# Shared head of the scripts: ARGV[1] is the prefix. prune() drops queued tickets whose key
# expired and returns the live queue; retry_ms() is the soonest expiry a waiter at `place` awaits.
_LIB = """
local p = ARGV[1]
local function prune()
  local q = redis.call('LRANGE', p .. 'queue', 0, -1)
  local live, dropped = {}, false
  for _, t in ipairs(q) do
    if redis.call('EXISTS', p .. 'ticket:' .. t) == 1 then table.insert(live, t)
    else redis.call('LREM', p .. 'queue', 0, t); dropped = true end
  end
  if dropped then redis.call('PUBLISH', p .. 'changed', 'expired') end
  return live
end
local function free_urls(first)
  local free = {}
  for i = first, #ARGV do
    if redis.call('EXISTS', p .. 'lease:' .. ARGV[i]) == 0 then table.insert(free, ARGV[i]) end
  end
  return free
end
local function grant(url, ticket, ttl)
  local token = redis.call('INCR', p .. 'fence')
  redis.call('SET', p .. 'lease:' .. url, ticket .. ' ' .. token, 'PX', ttl)
  redis.call('PUBLISH', p .. 'changed', 'grant')
  return {'grant', url, token}
end
local function retry_ms(q, place, first)
  local soonest = -1
  local function consider(ms) if ms > 0 and (soonest < 0 or ms < soonest) then soonest = ms end end
  for i = first, #ARGV do consider(redis.call('PTTL', p .. 'lease:' .. ARGV[i])) end
  for i = 1, place do consider(redis.call('PTTL', p .. 'ticket:' .. q[i])) end
  return soonest
end
"""
# ARGV: prefix, ticket, max_queue, ttl_ms, front (1 or 0), urls...
_JOIN = _LIB + """
local ticket, max_queue, ttl, front = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local q = prune()
if #q == 0 or front then
  local free = free_urls(6)
  if #free > 0 then return grant(free[1], ticket, ttl) end
end
if front then
  redis.call('SET', p .. 'ticket:' .. ticket, '1', 'PX', ttl)
  redis.call('LPUSH', p .. 'queue', ticket)
  redis.call('PUBLISH', p .. 'changed', 'requeue')
  return {'waiting', 1, retry_ms(q, 0, 6)}
end
if #q >= max_queue then return {'full', #q} end
redis.call('SET', p .. 'ticket:' .. ticket, '1', 'PX', ttl)
redis.call('RPUSH', p .. 'queue', ticket)
return {'waiting', #q + 1, retry_ms(q, #q, 6)}
"""
# ARGV: prefix, ticket, ttl_ms, urls...
_POLL = _LIB + """
local ticket, ttl = ARGV[2], tonumber(ARGV[3])
local q = prune()
local place = -1
for i, t in ipairs(q) do if t == ticket then place = i - 1; break end end
if place < 0 then return {'gone'} end
local free = free_urls(4)
if place < #free then
  redis.call('LREM', p .. 'queue', 0, ticket)
  redis.call('DEL', p .. 'ticket:' .. ticket)
  return grant(free[1], ticket, ttl)
end
return {'waiting', place + 1, retry_ms(q, place, 4)}
"""
# ARGV: prefix, ticket, urls...
_LEAVE = """
local p, ticket = ARGV[1], ARGV[2]
local n = redis.call('LREM', p .. 'queue', 0, ticket) + redis.call('DEL', p .. 'ticket:' .. ticket)
for i = 3, #ARGV do
  local key = p .. 'lease:' .. ARGV[i]
  local held = redis.call('GET', key)
  if held and string.sub(held, 1, #ticket + 1) == ticket .. ' ' then n = n + redis.call('DEL', key) end
end
if n > 0 then redis.call('PUBLISH', p .. 'changed', 'leave') end
return n
"""
# ARGV: prefix, ttl_ms, n_tickets, tickets..., then url, value pairs; returns the lost ARGV indexes
_RENEW = """
local p, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lost = {}
for i = 4, 3 + n do
  if redis.call('PEXPIRE', p .. 'ticket:' .. ARGV[i], ttl) == 0 then table.insert(lost, i) end
end
for i = 4 + n, #ARGV, 2 do
  local key = p .. 'lease:' .. ARGV[i]
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ttl)
  else table.insert(lost, i) end
end
return lost
"""
# ARGV: prefix, url, value
_RELEASE = """
local p = ARGV[1]
local key = p .. 'lease:' .. ARGV[2]
if redis.call('GET', key) ~= ARGV[3] then return 0 end
redis.call('DEL', key)
redis.call('PUBLISH', p .. 'changed', 'release')
return 1
"""


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class RedisLeaseStore:
    """Leases and the queue in Redis, shared by every replica pointing at the same ``prefix``.

    Call :meth:`start` (the pool does) before use, so no change is missed, and :meth:`aclose`.
    A Redis error, a lost connection or a call unanswered for ``timeout_s`` raises
    :class:`~asgi_audio_proxy.errors.LeaseStoreUnavailable`, chained to the Redis exception.

    Args:
        redis: an asyncio client (``redis.asyncio.Redis.from_url("redis://host:6379/0")``);
            the store closes it in :meth:`aclose` only if ``owns_client``.
        prefix: the start of every key and of the channel.
        ttl_s: how long a lease or queued ticket outlives its replica's last heartbeat.
        owns_client: close ``redis`` in :meth:`aclose`.
        timeout_s: the longest any one call (and the subscription at :meth:`start`) may take.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_REDIS_PREFIX,
                 ttl_s: float = DEFAULT_LEASE_TTL_S, owns_client: bool = False,
                 timeout_s: float = DEFAULT_REDIS_TIMEOUT_S) -> None:
        for name, value in (("ttl_s", ttl_s), ("timeout_s", timeout_s)):
            if not 0 < value < float("inf"):
                raise ValueError(f"invalid {name}={value!r}: expected a positive finite number")
        self.timeout_s = timeout_s
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self.ttl_s = self._ttl_ms / 1000  # what the leases get: Redis counts whole milliseconds
        self.prefix = prefix
        self._redis = redis
        self._owns_client = owns_client
        self._scripts = {name: redis.register_script(lua) for name, lua in
                         (("join", _JOIN), ("poll", _POLL), ("leave", _LEAVE),
                          ("renew", _RENEW), ("release", _RELEASE))}
        self._changes = ChangeSignal()
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLeaseStore:
        """A store on its own client for ``url`` (``redis://host:6379/0``), closed with the store."""
        return cls(Redis.from_url(url), owns_client=True, **kwargs)

    @property
    def version(self) -> int:
        return self._changes.version

    async def start(self) -> None:
        """Subscribe to the change channel; returns once Redis has confirmed it.

        Raises:
            LeaseStoreUnavailable: Redis refused, failed or did not confirm within ``timeout_s``
                (a later call tries again).
        """
        if self._listener is None:
            subscribed = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(subscribed), name="lease-listener")
            try:
                async with asyncio.timeout(self.timeout_s):
                    await asyncio.shield(subscribed)
            except (RedisError, OSError, TimeoutError) as exc:
                listener, self._listener = self._listener, None
                with contextlib.suppress(RedisError, OSError):
                    await stop_task(listener)
                raise LeaseStoreUnavailable(f"the lease store (Redis) could not be subscribed to: "
                                            f"{exc or 'no answer within ' + str(self.timeout_s) + ' s'}"
                                            ) from exc

    async def join(self, ticket: str, urls: Sequence[str], max_queue: int, *,
                   front: bool = False) -> Grant | Waiting | QueueFull:
        reply = await self._run("join", ticket, max_queue, self._ttl_ms, 1 if front else 0, *urls)
        if reply[0] == "full":
            return QueueFull(int(reply[1]))
        return self._outcome(reply, ticket)

    async def poll(self, ticket: str, urls: Sequence[str]) -> Grant | Waiting | None:
        reply = await self._run("poll", ticket, self._ttl_ms, *urls)
        return None if reply[0] == "gone" else self._outcome(reply, ticket)

    async def leave(self, ticket: str, urls: Sequence[str]) -> None:
        await self._run("leave", ticket, *urls)

    async def renew(self, tickets: Collection[str], grants: Collection[Grant]) -> set[str | Grant]:
        if not tickets and not grants:
            return set()
        ticket_list, grant_list = list(tickets), list(grants)
        args: list[str | int] = [self._ttl_ms, len(ticket_list), *ticket_list]
        for grant in grant_list:
            args += [grant.url, _value(grant)]
        lost: set[str | Grant] = set()
        for index in await self._run("renew", *args):  # ARGV indexes, 1-based, prefix first
            at = int(index) - 4
            lost.add(ticket_list[at] if at < len(ticket_list) else grant_list[(at - len(ticket_list)) // 2])
        return lost

    async def release(self, grant: Grant) -> bool:
        return bool(await self._run("release", grant.url, _value(grant)))

    async def changed(self, seen: int, timeout_s: float | None) -> None:
        await self._changes.wait(seen, timeout_s)

    def wake(self) -> None:
        self._changes.bump()

    async def snapshot(self, urls: Sequence[str]) -> StoreSnapshot:
        try:
            async with asyncio.timeout(self.timeout_s):
                # redis-py 5 types the asyncio client's lrange() as maybe-not-awaitable; it always is
                waiting = cast("Awaitable[list[Any]]", self._redis.lrange(self.prefix + "queue", 0, -1))
                queue = [_text(t) for t in await waiting]
                values = (await self._redis.mget([self.prefix + "lease:" + url for url in urls])
                          if urls else [])
        except TimeoutError as exc:
            raise LeaseStoreUnavailable(f"the lease store (Redis) did not answer within "
                                        f"{self.timeout_s:g} s") from exc
        except (RedisError, OSError) as exc:
            raise LeaseStoreUnavailable(f"the lease store (Redis) failed: {exc}") from exc
        leases = {}
        for url, value in zip(urls, values, strict=True):
            if value is not None:
                ticket, token = _text(value).rsplit(" ", 1)
                leases[url] = Grant(url, ticket, int(token))
        return StoreSnapshot(tuple(queue), leases)

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await stop_task(listener)
        if self._owns_client:
            await self._redis.aclose()

    async def _run(self, name: str, *args: str | int) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                return _decode(await self._scripts[name](args=[self.prefix, *args]))
        except TimeoutError as exc:
            raise LeaseStoreUnavailable(f"the lease store (Redis) did not answer {name} within "
                                        f"{self.timeout_s:g} s") from exc
        except (RedisError, OSError) as exc:
            raise LeaseStoreUnavailable(f"the lease store (Redis) failed: {exc}") from exc

    def _outcome(self, reply: list[Any], ticket: str) -> Grant | Waiting:
        if reply[0] == "grant":
            return Grant(reply[1], ticket, int(reply[2]))
        retry_ms = int(reply[2])
        return Waiting(int(reply[1]), retry_ms / 1000 if retry_ms >= 0 else None)

    async def _listen(self, subscribed: asyncio.Future[None]) -> None:
        """Bump the version on every message of the channel, resubscribing if Redis drops us."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.prefix + "changed")
                async for message in pubsub.listen():
                    if message["type"] == "subscribe" and not subscribed.done():
                        subscribed.set_result(None)
                    self._changes.bump()  # a (re)subscription may have missed changes: re-check too
            except (RedisConnectionError, OSError) as exc:
                if not subscribed.done():
                    subscribed.set_exception(exc)
                    return
                logger.warning("lease change channel lost (%s); resubscribing in %.0f s",
                               exc, _RESUBSCRIBE_S)
                self._changes.bump()
                await asyncio.sleep(_RESUBSCRIBE_S)  # a production back-off, not a test wait
            finally:
                with contextlib.suppress(RedisConnectionError, OSError):
                    # redis-py types aclose() only from 6.x on; the call is the same on every release
                    await cast("_Closable", pubsub).aclose()


def _value(grant: Grant) -> str:
    return f"{grant.ticket} {grant.token}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(reply: Any) -> Any:
    if isinstance(reply, list):
        return [_decode(item) for item in reply]
    return _text(reply) if isinstance(reply, bytes) else reply
