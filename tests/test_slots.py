"""Servers that hold several conversations (slots), kinds in one pool, and a server that is full.

The simulator in ``multi_conversation`` mode stands in for a server with room for several
conversations; a kind wraps the MiniCPM-o adapter to make it refuse beyond a cap, as a server
whose capacity is smaller than it was declared (or shared with someone else) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions
from asgi_audio_proxy.dialects.native_client import ProxyMessage, QueuedMessage, ReadyMessage
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.errors import UpstreamBusy
from asgi_audio_proxy.pool.pool import UpstreamPool, UpstreamServer, slot_keys
from asgi_audio_proxy.pool.redis_store import RedisLeaseStore
from asgi_audio_proxy.upstreams.kind import UpstreamKind
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter, minicpm_adapter
from asgi_audio_proxy.upstreams.minicpm.kind import MINICPM
from tests.clients import ProxyClient, arrive
from tests.conftest import Upstream, running_simulator
from tests.redis_server import HAVE_REDIS, SKIP_REASON, redis_server
from tests.servers import serve_uvicorn
from tests.signals import silence, tone

UTTERANCE = tone(440, 1.0) + silence(1.4)


@contextlib.asynccontextmanager
async def proxy_on(pool: UpstreamPool, kind: UpstreamKind = MINICPM) -> AsyncIterator[str]:
    proxy = AudioProxy(ProxyConfig(chunk_duration=0.2), leaser=pool, kind=kind)
    try:
        async with serve_uvicorn(proxy) as port:
            yield f"ws://127.0.0.1:{port}/"
    finally:
        await proxy.aclose()
        await pool.aclose()


@contextlib.asynccontextmanager
async def many_simulator() -> AsyncIterator[Upstream]:
    async with running_simulator(multi_conversation=True) as up:
        yield up


def test_slots_are_keys_filled_across_servers_first() -> None:
    pool = UpstreamPool([UpstreamServer("http://a:1", slots=3), UpstreamServer("http://b:1", slots=2),
                         "http://c:1"])
    assert slot_keys("http://a:1", 3) == ["http://a:1", "http://a:1#2", "http://a:1#3"]
    assert pool.slots == ("http://a:1", "http://b:1", "http://c:1", "http://a:1#2", "http://b:1#2",
                          "http://a:1#3")
    assert pool.total_slots == 6 and pool.capacity("http://a:1") == 3
    assert pool.server_of("http://b:1#2") == "http://b:1"


def test_a_kind_checks_its_urls_and_slots() -> None:
    with pytest.raises(ValueError, match="minicpm upstream"):
        UpstreamPool(["ws://a:1/v1/realtime"], kind=MINICPM)
    with pytest.raises(ValueError, match="slots"):
        UpstreamPool([UpstreamServer("http://a:1", slots=0)])
    with pytest.raises(ValueError, match="distinct"):
        UpstreamPool(["http://a:1", "http://a:1/"])
    with pytest.raises(ValueError, match="slots"):
        MINICPM.with_slots(0)


async def test_two_slots_three_clients_ready_ready_queued_then_served() -> None:
    async with many_simulator() as up, proxy_on(UpstreamPool(
            [up.url], kind=MINICPM.with_slots(2), health_interval_s=0.1)) as url:
        (c1, e1), (c2, e2), (c3, e3) = [await arrive(url) for _ in range(3)]
        try:
            assert [type(e) for e in (e1, e2, e3)] == [ReadyMessage, ReadyMessage, QueuedMessage]
            assert isinstance(e3, QueuedMessage) and e3.position == 1
            async with asyncio.TaskGroup() as tg:  # both slots hold a live conversation at once
                turns = [tg.create_task(c.say(UTTERANCE)) for c in (c1, c2)]
            assert all(turn.result().audio for turn in turns)
            await c1.__aexit__()
            assert await c3.queued_then_ready() == []
            assert (await c3.say(UTTERANCE)).audio
        finally:
            for client in (c1, c2, c3):
                await client.__aexit__()


def capped_kind(cap: int, refusals: list[str]) -> UpstreamKind:
    """MiniCPM-o adapters that refuse (``UpstreamBusy``) past ``cap`` open conversations."""
    live: set[int] = set()

    class Capped(MiniCPMAdapter):
        async def connect(self, options: UpstreamOptions) -> None:
            if len(live) >= cap:
                refusals.append("refused")
                raise UpstreamBusy(f"the server holds {cap} conversations")
            live.add(id(self))
            await super().connect(options)

        async def aclose(self) -> None:
            live.discard(id(self))
            await super().aclose()

    def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                log: logging.LoggerAdapter[logging.Logger]) -> MiniCPMAdapter:
        return Capped(replace(config, upstream_url=url), http_client, log)

    return replace(MINICPM, name="capped", factory=factory, slots=3)


async def test_a_server_full_before_its_slots_makes_the_third_wait_never_fail() -> None:
    refusals: list[str] = []
    kind = capped_kind(2, refusals)
    async with many_simulator() as up, proxy_on(UpstreamPool(
            [up.url], kind=kind, health_interval_s=60), kind) as url:
        (c1, e1), (c2, e2) = [await arrive(url) for _ in range(2)]
        c3 = ProxyClient(url, expect_ready=False)
        await c3.__aenter__()
        try:
            assert [type(e) for e in (e1, e2)] == [ReadyMessage, ReadyMessage]
            first = await c3.next_message()  # its slot was free, but the server said it is full
            assert isinstance(first, QueuedMessage) and first.position == 1, first
            assert refusals == ["refused"]
            await c2.__aexit__()  # a conversation ends: the server has room, the slot rests no more
            assert await c3.queued_then_ready() == []
            assert (await c3.say(UTTERANCE)).audio
            assert refusals == ["refused"]  # no second try before the server had room
        finally:
            for client in (c1, c2, c3):
                await client.__aexit__()


async def test_a_mixed_pool_serves_each_server_with_its_own_kind() -> None:
    made: list[str] = []

    def tagged(tag: str) -> UpstreamKind:
        def factory(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                    log: logging.LoggerAdapter[logging.Logger]) -> MiniCPMAdapter:
            made.append(tag)
            return minicpm_adapter(url, config, http_client, log)
        return replace(MINICPM, name=tag, factory=factory)

    async with running_simulator() as a, running_simulator() as b, proxy_on(UpstreamPool(
            [UpstreamServer(a.url, tagged("first")), UpstreamServer(b.url, tagged("second"))],
            health_interval_s=0.1)) as url, ProxyClient(url) as c1, ProxyClient(url) as c2:
        async with asyncio.TaskGroup() as tg:
            turns = [tg.create_task(c.say(UTTERANCE)) for c in (c1, c2)]
        assert all(turn.result().audio for turn in turns)
        assert sorted(made) == ["first", "second"]


@pytest.mark.skipif(not HAVE_REDIS, reason=SKIP_REASON)
async def test_two_processes_sharing_redis_never_put_more_than_the_slots_on_a_server() -> None:
    with redis_server() as redis_url:
        async with many_simulator() as up, contextlib.AsyncExitStack() as stack:
            urls = []
            for _ in range(2):  # two proxies, as two processes would be, one store
                pool = UpstreamPool([up.url], kind=MINICPM.with_slots(2), health_interval_s=0.1,
                                    store=RedisLeaseStore.from_url(redis_url))
                urls.append(await stack.enter_async_context(proxy_on(pool)))
            arrivals: list[tuple[ProxyClient, ProxyMessage]] = []
            for url in (urls[0], urls[1], urls[0], urls[1]):
                arrivals.append(await arrive(url))
                stack.push_async_callback(arrivals[-1][0].__aexit__)
            firsts = [event for _, event in arrivals]
            assert [type(e) for e in firsts] == [ReadyMessage] * 2 + [QueuedMessage] * 2
            assert [e.position for e in firsts if isinstance(e, QueuedMessage)] == [1, 2]
            await arrivals[0][0].__aexit__()
            assert await arrivals[2][0].queued_then_ready() == []
            assert await arrivals[3][0].next_position() == 1
