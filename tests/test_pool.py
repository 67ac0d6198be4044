"""``UpstreamPool`` in one process: real simulators and proxy on uvicorn, real websockets clients.

``UPSTREAM_PROTOCOL.md`` 5.1 and 8: an upstream holds one conversation, so each simulator must
see one uid at a time; clients beyond the upstreams wait in a FIFO queue and are told their place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import (
    ErrorMessage,
    QueuedMessage,
    ReadyMessage,
    TurnEndMessage,
    decode_message,
)
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.pool.pool import UpstreamPool
from asgi_audio_proxy.pool.redis_store import RedisLeaseStore
from asgi_audio_proxy.pool.store import LeaseStore, MemoryLeaseStore
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from tests.clients import ProxyClient, arrive
from tests.conftest import Upstream, running_simulator
from tests.fakes import FakeClient, notify_to
from tests.servers import serve_uvicorn
from tests.signals import silence, tone
from tests.timing import within

UTTERANCE = tone(440, 1.0) + silence(1.4)  # a short turn: sound, then enough quiet for the VAD


def one_uid_at_a_time(recorder: SimulatorRecorder) -> bool:
    """No uid comes back after another took over, and no chunk was refused for a uid change."""
    uids = recorder.completions_uids
    blocks = [uid for i, uid in enumerate(uids) if i == 0 or uids[i - 1] != uid]
    return len(blocks) == len(set(blocks)) and not any(
        a.error and "uid" in a.error.lower() for a in recorder.acks)


@contextlib.asynccontextmanager
async def pooled_proxy(urls: list[str], **pool_options: Any) -> AsyncIterator[tuple[UpstreamPool, str]]:
    pool = UpstreamPool(urls, **{"health_interval_s": 0.1, **pool_options})
    proxy = AudioProxy(ProxyConfig(chunk_duration=0.2), leaser=pool)
    try:
        async with serve_uvicorn(proxy) as port:
            yield pool, f"ws://127.0.0.1:{port}/"
    finally:
        await proxy.aclose()
        await pool.aclose()


@contextlib.asynccontextmanager
async def simulators(n: int) -> AsyncIterator[list[Upstream]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_simulator()) for _ in range(n)]


async def test_two_upstreams_five_clients_two_live_three_queued_served_in_order() -> None:
    async with simulators(2) as ups, pooled_proxy([u.url for u in ups]) as (pool, url):
        arrivals = [await arrive(url) for _ in range(5)]
        clients = [client for client, _ in arrivals]
        firsts = [event for _, event in arrivals]
        assert [type(e) for e in firsts] == [ReadyMessage] * 2 + [QueuedMessage] * 3
        queued = [e for e in firsts if isinstance(e, QueuedMessage)]
        assert [e.position for e in queued] == [1, 2, 3]
        assert all(e.eta_s > 0 for e in queued)
        assert pool.leased == {u.url for u in ups} and pool.waiting == 3
        c1, c2, c3, c4, c5 = clients
        async with asyncio.TaskGroup() as tg:
            turns = [tg.create_task(c.say(UTTERANCE)) for c in (c1, c2)]
        await c1.__aexit__()
        ready_at_c3 = asyncio.create_task(c3.queued_then_ready())
        assert await c4.next_position() == 1
        assert await c5.next_position() == 2
        assert await ready_at_c3 == []
        await c2.__aexit__()
        assert await c4.queued_then_ready() == []
        assert await c5.next_position() == 1
        async with asyncio.TaskGroup() as tg:
            turns += [tg.create_task(c.say(UTTERANCE)) for c in (c3, c4)]
        await c3.__aexit__()
        assert await c5.queued_then_ready() == []
        turns.append(asyncio.create_task(c5.say(UTTERANCE)))
        await turns[-1]
        for client in (c4, c5):
            await client.__aexit__()
    for turn in turns:
        assert turn.result().ending == TurnEndMessage("complete")
        assert "Turn 1" in turn.result().text
    for up in ups:
        assert one_uid_at_a_time(up.sim.recorder)
    assert sum(len(set(up.sim.recorder.completions_uids)) for up in ups) == 5


class Outage:
    """Stands in front of a simulator: ``stop()`` crashes it and fails ``/health``; ``start()`` heals."""

    def __init__(self, sim: UpstreamSimulator) -> None:
        self.sim = sim
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.down or scope["type"] == "lifespan":
            await self.sim(scope, receive, send)
        elif scope["type"] == "http":
            await PlainTextResponse("down", 503)(scope, receive, send)
        else:
            await WebSocket(scope, receive, send).close(1011)

    def stop(self) -> None:
        self.down = True
        for conversation in self.sim.conversations():
            self.sim.die(conversation)

    def start(self) -> None:
        self.down = False


async def test_a_stopped_upstream_ends_its_session_leaves_the_pool_and_returns() -> None:
    sims = [UpstreamSimulator(), UpstreamSimulator()]
    outage = Outage(sims[0])
    async with serve_uvicorn(outage) as port_a, serve_uvicorn(sims[1]) as port_b:
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        async with pooled_proxy([url_a, url_b]) as (pool, url):
            first, event = await arrive(url)
            assert isinstance(event, ReadyMessage) and pool.leased == {url_a}
            await first.send_paced(tone(440, 0.4))
            outage.stop()
            # a live client goes on streaming, and the next audio finds the upstream gone
            streaming = asyncio.create_task(first.send_paced(silence(5)))
            error = await first.next_message()
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await streaming
            assert isinstance(error, ErrorMessage) and error.code == 1011
            async with asyncio.timeout(within(5)):
                await pool.health.wait(url_a, healthy=False)
            second, event = await arrive(url)
            assert isinstance(event, ReadyMessage) and pool.leased == {url_b}
            third, event = await arrive(url)  # A is out, B is busy: it waits, not on A
            assert isinstance(event, QueuedMessage) and event.position == 1, event
            outage.start()
            async with asyncio.timeout(within(5)):
                await pool.health.wait(url_a)
            assert await third.queued_then_ready() == []
            assert pool.leased == {url_a, url_b}
            turn = await third.say(UTTERANCE)
            assert turn.ending == TurnEndMessage("complete")
            for client in (first, second, third):
                with contextlib.suppress(ConnectionClosed):
                    await client.__aexit__()
    for sim in sims:
        sim.close()
        assert one_uid_at_a_time(sim.recorder)


async def closed_with(client: ProxyClient) -> tuple[ErrorMessage, int | None]:
    """The error event a refused client gets, and the close code after it."""
    event = await client.next_message()
    assert isinstance(event, ErrorMessage), event
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within(5)):
            await client.conn.recv()
    return event, closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_full_queue_and_the_wait_limit_close_with_1013() -> None:
    async with simulators(1) as ups, pooled_proxy([ups[0].url], max_queue=1,
                                                  max_wait_s=within(1.0)) as (pool, url):
        live, _ = await arrive(url)
        waiting, event = await arrive(url)
        assert isinstance(event, QueuedMessage)
        refused = ProxyClient(url, expect_ready=False)
        await refused.__aenter__()
        error, code = await closed_with(refused)
        assert code == 1013 and error.kind == "limit_exceeded" and "queue is full" in error.message
        error, code = await closed_with(waiting)  # nobody leaves: the wait limit passes
        assert code == 1013 and "no upstream became free" in error.message
        assert pool.waiting == 0
        await live.__aexit__()


async def test_leaving_the_queue_moves_the_others_up_at_once() -> None:
    async with simulators(1) as ups, pooled_proxy([ups[0].url]) as (pool, url):
        live, _ = await arrive(url)
        first_waiting, _ = await arrive(url)
        second_waiting, event = await arrive(url)
        assert isinstance(event, QueuedMessage) and event.position == 2
        await first_waiting.__aexit__()
        assert await second_waiting.next_position() == 1
        assert pool.waiting == 1
        await live.__aexit__()
        assert await second_waiting.queued_then_ready() == []
        await second_waiting.__aexit__()


async def test_audio_sent_while_queued_is_held_up_to_the_bound_then_refused() -> None:
    held, refused = tone(440, 0.2), tone(660, 0.2)  # 6 400 bytes each; the bound holds one
    async with simulators(1) as ups, pooled_proxy([ups[0].url], max_held_bytes=8000) as (_, url):
        live, _ = await arrive(url)
        waiting, _ = await arrive(url)
        await waiting.conn.send(held)
        await waiting.conn.send(refused)
        error = await waiting.next_message()
        assert isinstance(error, ErrorMessage) and error.kind == "limit_exceeded"
        assert "held up to 8000 bytes" in error.message
        await live.__aexit__()
        assert await waiting.queued_then_ready() == []
        recorder = ups[0].sim.recorder
        await recorder.wait_for(lambda r: len(r.completions_uids) >= 2 and sum(
            map(len, r.chunks[r.completions_uids[-1]])) >= len(held), timeout=within(5))
        assert b"".join(recorder.chunks[recorder.completions_uids[-1]]) == held  # not `refused`
        await waiting.__aexit__()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> LeaseStore:
    if request.param == "memory":
        return MemoryLeaseStore()
    url = request.getfixturevalue("redis_url")
    return RedisLeaseStore.from_url(url, prefix=f"pool-{id(request)}:", ttl_s=within(2.0))


async def test_a_thousand_queue_join_leave_cycles_leave_nothing_behind(store: LeaseStore) -> None:
    async with running_simulator() as up:
        await _join_and_leave_a_thousand_times(UpstreamPool([up.url], store=store))


async def _join_and_leave_a_thousand_times(pool: UpstreamPool) -> None:
    store, holder = pool.store, FakeClient()
    try:
        lease = await pool.acquire("holder", holder, notify_to(holder))  # the one upstream is taken
        for i in range(1000):
            client = FakeClient()
            waiting = asyncio.create_task(pool.acquire(f"s{i}", client, notify_to(client)))
            async with asyncio.timeout(within(5)):
                queued = decode_message(await client.outgoing.get())
            assert isinstance(queued, QueuedMessage) and queued.position == 1, queued
            client.feed(None)  # the client leaves while it waits
            with pytest.raises(Exception, match="client left"):
                async with asyncio.timeout(within(5)):
                    await waiting
        # the server and the health checks run tasks of their own; none of the queue's may stay
        leftovers = [t for t in asyncio.all_tasks() if any(
            name in repr(t.get_coro()) for name in ("acquire", "_hold_frames", "changed"))]
        assert leftovers == []
        assert pool.waiting == 0
        snapshot = await store.snapshot(pool.urls)
        assert snapshot.queue == () and set(snapshot.leases) == {lease.url}
        await lease.release()
        assert dict((await store.snapshot(pool.urls)).leases) == {}
    finally:
        await pool.aclose()
