"""A wait in the upstream's own queue (``session/queue_wait.py``), through a ``ProxySession`` whose
given adapter's server queues the conversation first: each place reaches the client as ``queued``;
what the client sends meanwhile is held and goes upstream after ``ready`` (past the bound, one
``limit_exceeded`` error, and the wait goes on); a client that leaves ends the wait at once, and
the adapter is closed."""

from __future__ import annotations

import asyncio

from asgi_audio_proxy.audio import MESSAGE_BYTES
from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions
from asgi_audio_proxy.dialects.native_client import (
    ErrorMessage,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    decode_message,
)
from asgi_audio_proxy.events import UpstreamQueued
from asgi_audio_proxy.pool.pool import DEFAULT_MAX_HELD_BYTES
from asgi_audio_proxy.session.session import ProxySession
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.upstreams.base import QueueingUpstream, QueueReport
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from tests.fakes import FakeClient, FakeUpstream
from tests.http_clients import http_client
from tests.signals import tone
from tests.timing import within

PLACES = [UpstreamQueued(2, 61.0), UpstreamQueued(1, 29.96)]


class QueuedAdapter(MiniCPMAdapter):
    """A MiniCPM adapter whose server queues the conversation: at connect it reports
    :data:`PLACES`, then waits for ``worker_free``."""

    def __init__(self, config: ProxyConfig, transport: FakeUpstream) -> None:
        super().__init__(config, transport=transport)
        self.worker_free = asyncio.Event()
        self.queued = asyncio.Event()
        self.closed = False
        self._report: QueueReport | None = None

    def report_queue(self, report: QueueReport) -> None:
        self._report = report

    async def connect(self, options: UpstreamOptions) -> None:
        assert self._report is not None
        for place in PLACES:
            await self._report(place)
        self.queued.set()
        await self.worker_free.wait()
        await super().connect(options)

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


class Queued:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.upstream = FakeUpstream()
        self.http = http_client()
        self.adapter = QueuedAdapter(ProxyConfig(chunk_duration=0.2), self.upstream)
        self.session = ProxySession(self.client, ProxyConfig(chunk_duration=0.2), self.http,
                                    upstream=self.adapter)
        self.task: asyncio.Task[SessionStats] | None = None

    async def __aenter__(self) -> Queued:
        assert isinstance(self.adapter, QueueingUpstream)
        self.task = asyncio.create_task(self.session.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            self.client.feed(None)
            await self.finish()
        await self.http.aclose()

    async def next_message(self) -> ProxyMessage:
        async with asyncio.timeout(within(5)):
            return decode_message(await self.client.outgoing.get())

    async def finish(self) -> SessionStats:
        assert self.task is not None
        async with asyncio.timeout(within(5)):
            return await self.task


async def test_each_place_reaches_the_client_as_queued_then_ready() -> None:
    async with Queued() as q:
        assert [await q.next_message(), await q.next_message()] == [QueuedMessage(2, 61.0),
                                                                    QueuedMessage(1, 30.0)]
        q.adapter.worker_free.set()
        assert await q.next_message() == ReadyMessage(q.session.id, "2.6")


async def test_audio_sent_meanwhile_goes_up_after_ready_and_past_the_bound_costs_one_error() -> None:
    async with Queued() as q:
        await q.next_message(), await q.next_message()
        q.client.feed(tone(440, 0.2), bytes(DEFAULT_MAX_HELD_BYTES))  # held, then past the bound
        refused = await q.next_message()  # read while queued: the wait goes on
        assert not q.upstream.chunks
        q.adapter.worker_free.set()
        assert await q.next_message() == ReadyMessage(q.session.id, "2.6")
        async with asyncio.timeout(within(5)):
            await q.upstream.chunk_arrived.wait()  # the held audio, replayed after ready
    assert isinstance(refused, ErrorMessage) and (refused.kind, refused.code) == ("limit_exceeded", 1013)
    assert len(q.upstream.chunks) == 1 and len(q.upstream.chunks[0]) >= MESSAGE_BYTES


async def test_a_client_that_leaves_while_queued_ends_the_wait_and_the_adapter_is_closed() -> None:
    async with Queued() as q:
        await q.next_message(), await q.next_message()
        q.client.feed(None)
        stats = await q.finish()
    assert stats.close_code == 1000 and q.adapter.closed
    assert not q.adapter.worker_free.is_set() and not q.upstream.options  # it never connected
