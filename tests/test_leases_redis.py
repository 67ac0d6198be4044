"""``RedisLeaseStore`` on a real redis-server: the store contract of ``tests/test_leases.py``, plus
what only a shared store shows (two replicas' clients in one queue, no keys left behind).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from asgi_audio_proxy.errors import UpstreamUnavailable
from asgi_audio_proxy.leases import Grant, LeaseStore, Waiting
from asgi_audio_proxy.leases_redis import RedisLeaseStore
from tests.redis_server import HAVE_REDIS, SKIP_REASON, redis_server
from tests.test_leases import URLS, StoreContract, any_retry
from tests.timing import within

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason=SKIP_REASON)

#: short, so expiry tests take a second; the heartbeat and retry maths scale with it
TTL_S = 0.3


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


async def make_store(redis_url: str, prefix: str, ttl_s: float = TTL_S) -> RedisLeaseStore:
    store = RedisLeaseStore.from_url(redis_url, prefix=prefix, ttl_s=ttl_s)
    await store.start()
    return store


class TestRedisLeaseStore(StoreContract):
    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RedisLeaseStore]:
        store = await make_store(redis_url, f"test-{uuid.uuid4().hex[:8]}:", ttl_s=within(TTL_S))
        yield store
        await store.aclose()

    async def pass_time(self, store: LeaseStore, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the time under test: a TTL has to run out in Redis itself


async def test_two_replicas_share_one_queue_in_arrival_order(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    one, two = await make_store(redis_url, prefix), await make_store(redis_url, prefix)
    try:
        first = await one.join("one-1", URLS, 8)
        second = await two.join("two-1", URLS, 8)
        assert isinstance(first, Grant) and isinstance(second, Grant) and first.url != second.url
        assert await two.join("two-2", URLS, 8) == Waiting(1, any_retry())
        assert (await one.join("one-2", URLS, 8)).position == 2  # type: ignore[union-attr]
        seen = two.version
        assert await one.release(first)
        async with asyncio.timeout(within(5)):  # the other replica hears of it over pub/sub
            await two.changed(seen, None)
        assert isinstance(await one.poll("one-2", URLS), Waiting)  # not its turn yet
        granted = await two.poll("two-2", URLS)
        assert isinstance(granted, Grant) and granted.url == first.url
    finally:
        await one.aclose()
        await two.aclose()


async def test_join_and_leave_cycles_leave_no_key_behind(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = await make_store(redis_url, prefix)
    redis = Redis.from_url(redis_url)
    try:
        held = [await store.join(f"h{i}", URLS, 8) for i in range(2)]
        for i in range(1000):
            await store.join(f"c{i}", URLS, 8)
            await store.leave(f"c{i}", URLS)
        for grant in held:
            assert isinstance(grant, Grant) and await store.release(grant)
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await redis.keys(prefix + "*"))
        assert keys == [prefix + "fence"]  # only the token counter, which must never go back
    finally:
        await store.aclose()
        await redis.aclose()


async def test_an_unreachable_redis_is_an_upstream_unavailable_error() -> None:
    store = RedisLeaseStore(Redis(host="127.0.0.1", port=1, socket_connect_timeout=within(2),
                                  retry=Retry(NoBackoff(), 0)))
    with pytest.raises(UpstreamUnavailable, match="lease store"):
        await store.join("t1", URLS, 8)
    await store.aclose()
