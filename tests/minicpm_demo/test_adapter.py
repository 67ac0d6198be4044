"""The ``minicpm-demo`` adapter against the gateway simulator, on its own: a gateway with a full
queue refuses the conversation as busy; one that queues it keeps it, each place reported, until a
worker is free (on the same connection), or for ``max_queue_wait_s`` at most; a conversation
that was never created ends without a ``session.close`` the gateway would not read."""

from __future__ import annotations

import asyncio

import pytest

from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions
from asgi_audio_proxy.errors import SessionLimitExceeded, UpstreamBusy
from asgi_audio_proxy.events import UpstreamQueued
from asgi_audio_proxy.upstreams.base import QueueingUpstream
from asgi_audio_proxy.upstreams.minicpm_demo import DemoAdapter, DemoSettings
from tests.timing import within

from .support import RawClient, gateway


async def test_a_gateway_with_a_full_queue_refuses_the_conversation_as_busy() -> None:
    async with gateway(max_queue=0) as gw, RawClient.open(gw.ws_url()) as holder:
        await holder.start()
        adapter = DemoAdapter(gw.url, DemoSettings(connect_timeout_s=within(5)))
        with pytest.raises(UpstreamBusy, match="queue_full") as refused:
            await adapter.connect(UpstreamOptions())
        await adapter.aclose()
    assert refused.value.close_code == 1013
    assert len(gw.sim.recorder.received("session.update")) == 1  # the holder's: none was sent
    assert not gw.sim.recorder.received("session.close")


async def test_a_queued_conversation_keeps_its_place_and_reports_each_one_until_a_worker_is_free() -> None:
    places: list[UpstreamQueued] = []
    async with gateway(queue_update_s=0.1, expected_s=30.0) as gw, RawClient.open(gw.ws_url()) as holder:
        await holder.start()
        adapter = DemoAdapter(gw.url, DemoSettings(connect_timeout_s=within(5)))
        assert isinstance(adapter, QueueingUpstream)
        updated = asyncio.Event()

        async def report(place: UpstreamQueued) -> None:
            places.append(place)
            if len(places) == 3:
                updated.set()

        adapter.report_queue(report)
        connecting = asyncio.create_task(adapter.connect(UpstreamOptions()))
        async with asyncio.timeout(within(10)):
            await updated.wait()  # queued, then two updates: still waiting, on one connection
        assert not connecting.done()
        await holder.conn.close()
        async with asyncio.timeout(within(10)):
            await connecting
        assert adapter.gateway_session is not None
        await adapter.aclose()
    recorder = gw.sim.recorder
    [queued] = recorder.of("session.queued")
    assert places[0] == UpstreamQueued(1, queued["estimated_wait_s"])
    assert 25 < places[0].eta_s <= 30  # the gateway's estimate: its expected length, less the holder's time
    updates = recorder.of("session.queue_update")
    assert [p.eta_s for p in places[1:]] == [u["estimated_wait_s"] for u in updates][:len(places) - 1]
    assert all(p.position == 1 for p in places)
    assert len(recorder.of("session.queue_done")) == 2  # the holder's and ours: one connection each
    assert len(recorder.received("session.update")) == 2


async def test_a_queued_conversation_waits_max_queue_wait_s_at_most() -> None:
    async with gateway(queue_update_s=0.1) as gw, RawClient.open(gw.ws_url()) as holder:
        await holder.start()
        adapter = DemoAdapter(gw.url, DemoSettings(), ProxyConfig(max_queue_wait_s=0.5))
        started = asyncio.get_running_loop().time()
        with pytest.raises(SessionLimitExceeded, match=r"no worker within 0\.5 s") as refused:
            async with asyncio.timeout(within(10)):
                await adapter.connect(UpstreamOptions())
        waited_s = asyncio.get_running_loop().time() - started
        await adapter.aclose()
        # the gateway reads nothing while it queues: it finds the socket closed at its next update
        await gw.sim.recorder.wait_for(lambda r: gw.sim.queue.length == 0 and len(r.ended) == 1,
                                       timeout=within(5))
    assert refused.value.close_code == 1013
    assert 0.5 <= waited_s < within(2)
    assert len(gw.sim.recorder.received("session.update")) == 1  # the holder's
    assert not gw.sim.recorder.received("session.close")


async def test_a_conversation_opens_and_closes_with_session_close() -> None:
    async with gateway() as gw:
        adapter = DemoAdapter(gw.url, DemoSettings())
        await adapter.connect(UpstreamOptions(assistant_prompt="Be brief."))
        assert adapter.gateway_session is not None
        await adapter.aclose()
        await adapter.aclose()  # idempotent
        await gw.sim.recorder.wait_for(lambda r: len(r.ended) == 1, timeout=within(5))
    assert [e["type"] for e in gw.sim.recorder.sent][-1] == "session.closed"
    assert gw.sim.recorder.received("session.update")[0]["session"] == {"instructions": "Be brief."}
    assert gw.sim.recorder.received("session.close") == [{"type": "session.close", "reason": "user_stop"}]
