"""The MiniCPM adapter on its own, over the fake transport: what a voice cut sends again.

The fake acknowledges as the server does: ``skip`` while a reply is pending or playing (half
duplex, section 5.5), ``done`` otherwise; each test sets which."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from asgi_audio_proxy.audio import MESSAGE_BYTES
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.events import AudioOutcome, ReplyEnded, ReplyStarted, UpstreamEvent
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from asgi_audio_proxy.upstreams.minicpm.transport import BodyClosed
from asgi_audio_proxy.upstreams.minicpm.wire import ReplyMessage
from tests.fakes import FakeUpstream
from tests.timing import within


def _message(n: int) -> bytes:
    """One 200 ms message whose every byte says which one it is."""
    return bytes([n]) * MESSAGE_BYTES


class Seen:
    """The adapter's ``emit``: keeps every event and signals each one."""

    def __init__(self) -> None:
        self.events: list[UpstreamEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, event: UpstreamEvent) -> None:
        self.events.append(event)
        self.changed.set()


async def _until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait until ``condition`` holds, checking it each time ``changed`` is set."""
    async with asyncio.timeout(within(5)):
        while not condition():
            changed.clear()
            await changed.wait()


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[FakeUpstream, MiniCPMAdapter, Seen]]:
    """An adapter over the fake transport, running (its ``emit`` a :class:`Seen`) until the end."""
    transport, seen = FakeUpstream(), Seen()
    adapter = MiniCPMAdapter(ProxyConfig(chunk_duration=0.2), transport=transport)
    task = asyncio.create_task(adapter.run(seen))
    try:
        yield transport, adapter, seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_voice_cut_sends_again_only_what_was_said_over_the_reply() -> None:
    async with running() as (transport, adapter, seen):
        events = seen.events
        for n in (1, 2):  # before the reply: the server hears these
            await adapter.send_audio(_message(n))
        await _until(lambda: len(transport.chunks) == 2, transport.chunk_arrived)
        transport.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("Hello", None, 1))
        await _until(lambda: any(isinstance(e, ReplyStarted) for e in events), seen.changed)
        transport.ack_reason = "skip"
        for n in (3, 4):  # over the reply: the server skips these (half duplex)
            await adapter.send_audio(_message(n))
        await _until(lambda: len(transport.chunks) == 4, transport.chunk_arrived)

        assert adapter.stop(resend_from_ms=0)  # the speech began before the reply, even
        transport.ack_reason = "done"
        transport.push(BodyClosed())  # the stopped body closes: the server listens again
        await adapter.send_audio(_message(5))
        await _until(lambda: len(transport.chunks) == 7, transport.chunk_arrived)
        assert [chunk[0] for chunk in transport.chunks] == [1, 2, 3, 4, 3, 4, 5]
        await _until(lambda: sum(isinstance(e, AudioOutcome) for e in events) == 7, seen.changed)
        outcomes = [e.outcome for e in events if isinstance(e, AudioOutcome)]
        assert outcomes == ["sent", "sent", "skipped", "skipped", "resent", "resent", "sent"]
        assert transport.stops == 1


async def test_a_cut_from_a_later_moment_sends_again_only_what_came_after_it() -> None:
    async with running() as (transport, adapter, _):
        transport.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("Hello", None, 1))
        transport.ack_reason = "skip"
        for n in (1, 2, 3):  # all three over the reply
            await adapter.send_audio(_message(n))
        await _until(lambda: len(transport.chunks) == 3, transport.chunk_arrived)
        assert adapter.stop(resend_from_ms=400)  # speech from message index 2 on (0.4 s)
        transport.ack_reason = "done"
        transport.push(BodyClosed())
        await adapter.send_audio(_message(4))
        await _until(lambda: len(transport.chunks) == 5, transport.chunk_arrived)
        assert [chunk[0] for chunk in transport.chunks] == [1, 2, 3, 3, 4]


async def test_what_the_server_skipped_goes_again_even_when_its_reply_had_already_ended() -> None:
    """A late cut: the model's reply is over (the client still plays its queued audio), so there
    is nothing to stop upstream, but what was said over it was skipped all the same."""
    async with running() as (transport, adapter, seen):
        await adapter.send_audio(_message(1))  # heard
        await _until(lambda: len(transport.chunks) == 1, transport.chunk_arrived)
        transport.ack_reason = "skip"  # the server's VAD fired: a reply is pending, then plays
        for n in (2, 3):
            await adapter.send_audio(_message(n))
        await _until(lambda: len(transport.chunks) == 3, transport.chunk_arrived)
        transport.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("Hi", None, 1),
                       ReplyMessage("\n<end>", None, 2), BodyClosed())
        await _until(lambda: sum(isinstance(e, AudioOutcome) for e in seen.events) == 3
                     and any(isinstance(e, ReplyEnded) for e in seen.events), seen.changed)
        transport.ack_reason = "done"
        await adapter.send_audio(_message(4))  # after the reply: heard
        await _until(lambda: len(transport.chunks) == 4, transport.chunk_arrived)

        assert not adapter.stop(resend_from_ms=200)  # no reply upstream: no /stop
        await adapter.send_audio(_message(5))
        await _until(lambda: len(transport.chunks) == 7, transport.chunk_arrived)
        assert [chunk[0] for chunk in transport.chunks] == [1, 2, 3, 4, 2, 3, 5]
        assert transport.stops == 0


async def test_what_the_server_heard_over_a_reply_is_not_sent_twice() -> None:
    """Messages sent while the proxy thought a reply was open, but acknowledged ``done`` (the
    server had already finished it), were heard: a cut sends none of them again."""
    async with running() as (transport, adapter, seen):
        transport.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("Hello", None, 1))
        await _until(lambda: any(isinstance(e, ReplyStarted) for e in seen.events), seen.changed)
        transport.ack_reason = "skip"
        await adapter.send_audio(_message(1))
        await _until(lambda: len(transport.chunks) == 1, transport.chunk_arrived)
        transport.ack_reason = "done"
        await adapter.send_audio(_message(2))
        await _until(lambda: sum(isinstance(e, AudioOutcome) for e in seen.events) == 2,
                     seen.changed)
        assert adapter.stop(resend_from_ms=0)
        transport.push(BodyClosed())
        await adapter.send_audio(_message(3))
        await _until(lambda: len(transport.chunks) == 4, transport.chunk_arrived)
        assert [chunk[0] for chunk in transport.chunks] == [1, 2, 1, 3]
