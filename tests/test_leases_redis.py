"""``RedisLeaseStore`` on a real redis-server: the store contract of ``tests/test_leases.py``, plus
what only a shared store shows (two replicas' clients in one queue, no keys left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from asgi_audio_proxy.dialects.native_client import QueuedMessage, ReadyMessage, TurnEndMessage
from asgi_audio_proxy.errors import LeaseStoreUnavailable
from asgi_audio_proxy.pool.redis_store import RedisLeaseStore
from asgi_audio_proxy.pool.store import Grant, LeaseStore, Waiting
from tests.clients import ProxyClient, Turn, arrive
from tests.processes import stop
from tests.redis_server import HAVE_REDIS, SKIP_REASON, redis_server
from tests.test_leases import URLS, StoreContract, any_retry
from tests.test_pool import (
    UTTERANCE,
    closed_with,
    one_uid_at_a_time,
    pooled_proxy,
    simulators,
)
from tests.timing import within

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason=SKIP_REASON)

#: long enough that no test's own round trips outlive it, even on a loaded machine (a thousand
#: join-leave cycles took more than 10 s with both cores busy)
TTL_S = 60.0
#: for the tests where leases must expire: short, yet far above one round trip
EXPIRING_TTL_S = 1.0


async def make_store(redis_url: str, prefix: str, ttl_s: float = TTL_S) -> RedisLeaseStore:
    store = RedisLeaseStore.from_url(redis_url, prefix=prefix, ttl_s=ttl_s)
    await store.start()
    return store


class TestRedisLeaseStore(StoreContract):
    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RedisLeaseStore]:
        store = await make_store(redis_url, f"test-{uuid.uuid4().hex[:8]}:")
        yield store
        await store.aclose()

    @pytest.fixture
    async def expiring_store(self, redis_url: str) -> AsyncIterator[RedisLeaseStore]:
        store = await make_store(redis_url, f"test-{uuid.uuid4().hex[:8]}:",
                                 ttl_s=within(EXPIRING_TTL_S))
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


async def test_an_unreachable_redis_is_a_lease_store_unavailable_error() -> None:
    store = RedisLeaseStore(Redis(host="127.0.0.1", port=1, socket_connect_timeout=within(2),
                                  retry=Retry(NoBackoff(), 0)))
    with pytest.raises(LeaseStoreUnavailable, match="lease store") as failed:
        await store.join("t1", URLS, 8)
    assert isinstance(failed.value.__cause__, RedisError | OSError)
    await store.aclose()


async def test_redis_stopped_while_a_client_waits_is_reported_as_the_lease_store() -> None:
    with contextlib.ExitStack() as running:
        redis_url = running.enter_context(redis_server())  # its own: this test stops it
        store = RedisLeaseStore.from_url(redis_url, prefix=f"stop-{uuid.uuid4().hex[:8]}:",
                                         ttl_s=TTL_S)
        async with simulators(1) as ups, pooled_proxy([ups[0].url], store=store,
                                                      max_wait_s=within(60)) as (pool, url):
            live, _ = await arrive(url)
            waiting, event = await arrive(url)
            assert isinstance(event, QueuedMessage) and pool.waiting == 1
            running.close()  # redis-server exits with the client still in the queue
            error, code = await closed_with(waiting)
            # the upstream is fine: the client must not be told it is unavailable
            assert error.kind == "lease_store_unavailable", error
            assert "lease store" in error.message and code == 1011
            assert ups[0].url in pool.health.healthy  # nor is it taken out of the pool
            await live.__aexit__()


#: the cross-process lease TTL: a killed proxy's upstreams return this long after its last beat
PROCESS_TTL_S = within(1.0)
ROOT = pathlib.Path(__file__).resolve().parents[1]


@contextlib.asynccontextmanager
async def proxy_process(redis_url: str, prefix: str, upstreams: list[str],
                        log: pathlib.Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``tests/pool_app.py`` in a process of its own; yields it and its ws:// URL."""
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.pool_app", "--redis", redis_url, "--prefix", prefix,
            "--ttl", str(PROCESS_TTL_S), *upstreams, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=stderr)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(within(20)):
            line = (await process.stdout.readline()).decode()
        assert line.startswith("port "), f"{line!r}; see {log}"
        yield process, f"ws://127.0.0.1:{int(line.split()[1])}/"
    finally:
        await stop(process)


@pytest.mark.slow
async def test_two_proxy_processes_share_three_upstreams_in_order_and_outlive_a_sigkill(
        redis_url: str, tmp_path: pathlib.Path) -> None:
    prefix = f"procs-{uuid.uuid4().hex[:8]}:"
    async with simulators(3) as ups:
        urls = [up.url for up in ups]
        # every change to a simulator's record is checked: never two of its sockets open at once
        overlaps = [asyncio.create_task(up.sim.recorder.wait_for(
            lambda r: r.ws_opened - r.ws_closed > 1)) for up in ups]
        async with proxy_process(redis_url, prefix, urls, tmp_path / "a.log") as (_, url_a), \
                proxy_process(redis_url, prefix, urls, tmp_path / "b.log") as (killed, url_b):
            placement = [url_a, url_b, url_b, url_b, url_a, url_b, url_a, url_a]
            arrivals = [await arrive(url) for url in placement]
            c = [client for client, _ in arrivals]
            firsts = [e for _, e in arrivals]
            assert [type(e) for e in firsts] == [ReadyMessage] * 3 + [QueuedMessage] * 5
            assert [e.position for e in firsts if isinstance(e, QueuedMessage)] == [1, 2, 3, 4, 5]
            turns = await talk(c[0], c[1], c[2])
            for leaving, served in ((0, 3), (1, 4), (2, 5)):  # one at a time, across processes
                await c[leaving].__aexit__()
                assert await c[served].queued_then_ready() == []
                for behind, client in enumerate(c[served + 1:], start=1):
                    queued = await client.next_message()
                    assert isinstance(queued, QueuedMessage) and queued.position == behind, queued
                    assert queued.eta_s > 0, queued
            turns += await talk(c[3], c[4], c[5])
            killed.send_signal(signal.SIGKILL)  # holds two upstreams (c[3], c[5]); A queues c[6], c[7]
            await killed.wait()
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(within(PROCESS_TTL_S + 5)):
                await c[6].queued_then_ready()
                await c[7].queued_then_ready()
            assert asyncio.get_running_loop().time() - started < PROCESS_TTL_S + within(1.5)
            turns += await talk(c[6], c[7])
            for client in (c[4], c[6], c[7]):
                await client.__aexit__()
        for turn in turns:
            assert turn.ending == TurnEndMessage("complete"), turn.ending
        for up, overlap in zip(ups, overlaps, strict=True):
            assert not overlap.done(), f"two conversations at once on {up.url}"
            overlap.cancel()
            assert one_uid_at_a_time(up.sim.recorder)
        assert sum(len(set(up.sim.recorder.completions_uids)) for up in ups) == 8


async def talk(*clients: ProxyClient) -> list[Turn]:
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(client.say(UTTERANCE)) for client in clients]
    return [task.result() for task in tasks]
