"""The session's reply path: reply events counted and queued, stops, and the reply's phase as the
session sees it, with no socket (the channel's client is a fake; its writer runs on the loop)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText
from asgi_audio_proxy.reply_state import ReplyPhase
from asgi_audio_proxy.session.channel import ClientChannel
from asgi_audio_proxy.session.rates import RateBridge
from asgi_audio_proxy.session.replies import ReplyPath
from asgi_audio_proxy.session.stats import SessionLog, SessionStats
from tests.fakes import FakeClient
from tests.timing import within

LOG = SessionLog(logging.getLogger("asgi_audio_proxy.session"), {"session": "s"})
PIECE = ReplyAudio(bytes(3200), 16_000)  # 100 ms at the native dialect's rate: no resampling


class Adapter:
    """The one thing a stop asks of an upstream adapter: whether its reply was playing."""

    def __init__(self, playing: bool) -> None:
        self.playing, self.stops = playing, 0

    def stop(self, resend_from_ms: float | None = None) -> bool:
        self.stops += 1
        was, self.playing = self.playing, False
        return was


def path_for(client: FakeClient, stats: SessionStats) -> tuple[ReplyPath, ClientChannel]:
    dialect = NativeDialect(1000)
    channel = ClientChannel(client, dialect, 1 << 20, stats, LOG)
    return ReplyPath(channel, dialect, RateBridge(), stats, LOG), channel


async def frames_until_turn_end(client: FakeClient, channel: ClientChannel) -> list[bytes | str]:
    writer = asyncio.create_task(channel.write())
    out: list[bytes | str] = []
    try:
        async with asyncio.timeout(within(5)):
            while not out or not (isinstance(out[-1], str) and "turn_end" in out[-1]):
                out.append(await client.outgoing.get())
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return out


async def flushed(client: FakeClient, channel: ClientChannel) -> list[bytes | str]:
    """Everything queued for the client, as the goodbye sends it before closing."""
    await channel.goodbye(None, 1000, within(5))
    out = []
    while not client.outgoing.empty():
        out.append(client.outgoing.get_nowait())
    return out


async def test_a_reply_is_counted_and_queued_in_order() -> None:
    client, stats = FakeClient(), SessionStats("s")
    path, channel = path_for(client, stats)
    for event in (ReplyStarted(), ReplyText("hi"), PIECE, PIECE, ReplyEnded("complete")):
        path.on_upstream(event)
    assert path.reply.phase is ReplyPhase.DONE
    assert (stats.replies, stats.reply_audio_bytes) == (1, 6400)
    out = await frames_until_turn_end(client, channel)
    assert [json.loads(f) if isinstance(f, str) else len(f) for f in out] == [
        {"type": "text", "content": "hi"}, 3200, 3200, {"type": "turn_end", "reason": "complete"}]
    assert channel.sent_reply.phase is ReplyPhase.DONE


async def test_a_stop_cuts_the_playing_reply_and_drops_its_queued_audio() -> None:
    client, stats = FakeClient(), SessionStats("s")
    path, channel = path_for(client, stats)
    adapter = Adapter(playing=True)
    for event in (ReplyStarted(), PIECE, PIECE):
        path.on_upstream(event)
    path.stop(adapter, "voice", resend_from_ms=120.0)
    assert adapter.stops == 1 and path.reply.phase is ReplyPhase.CUT
    assert (stats.replies, stats.reply_audio_dropped_bytes) == (1, 6400)
    assert [json.loads(f) for f in await frames_until_turn_end(client, channel)] == [
        {"type": "turn_end", "reason": "stopped"}]
    assert channel.sent_reply.phase is ReplyPhase.IDLE  # cut, and nothing more of it goes out
    path.on_upstream(ReplyStarted())  # the next reply plays
    assert path.reply.phase is ReplyPhase.PLAYING


async def test_a_stop_with_nothing_playing_anywhere_changes_nothing() -> None:
    client, stats = FakeClient(), SessionStats("s")
    path, channel = path_for(client, stats)
    adapter = Adapter(playing=False)
    path.stop(adapter, "client")
    assert adapter.stops == 1 and path.reply.phase is ReplyPhase.IDLE
    assert stats.replies == 0
    assert await flushed(client, channel) == []  # nothing was queued to tell the client


async def test_a_reply_the_upstream_had_not_announced_is_cut_all_the_same() -> None:
    client, stats = FakeClient(), SessionStats("s")
    path, channel = path_for(client, stats)
    path.stop(Adapter(playing=True), "client")  # MiniCPM-o: its echo came, not its first piece
    assert path.reply.phase is ReplyPhase.CUT and stats.replies == 1
    assert [json.loads(f) for f in await frames_until_turn_end(client, channel)] == [
        {"type": "turn_end", "reason": "stopped"}]
    assert channel.sent_reply.phase is ReplyPhase.IDLE  # its start never went out


def test_a_reply_still_playing_at_the_end_counts_once() -> None:
    stats = SessionStats("s")
    path, _ = path_for(FakeClient(), stats)
    path.close()
    assert stats.replies == 0
    path.on_upstream(ReplyStarted())
    path.close()
    assert stats.replies == 1 and path.reply.phase is ReplyPhase.CUT


async def test_an_adapter_out_of_order_is_reported_and_its_events_still_go(
        caplog: pytest.LogCaptureFixture) -> None:
    client, stats = FakeClient(), SessionStats("s")
    path, channel = path_for(client, stats)
    with caplog.at_level(logging.WARNING, "asgi_audio_proxy.session"):
        path.on_upstream(ReplyEnded("complete"))  # an end with no start
        path.on_upstream(ReplyStarted())
        path.on_upstream(ReplyStarted())  # a start with one playing
    assert [r.getMessage() for r in caplog.records] == [
        "[session s] upstream adapter out of order: session: cannot end a reply that is idle "
        "(allowed: close, start)",
        "[session s] upstream adapter out of order: session: cannot start a reply that is playing "
        "(allowed: cut, end, more)"]
    assert path.reply.phase is ReplyPhase.PLAYING and stats.replies == 1
    assert [json.loads(f) for f in await flushed(client, channel)] == [  # every event still went
        {"type": "turn_end", "reason": "complete"}]  # (a start says nothing on the native wire)
