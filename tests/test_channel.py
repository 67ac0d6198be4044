"""The way to the client: order, a slow reader's overflow policy, barge-in, the goodbye."""

from __future__ import annotations

import asyncio
import logging

import pytest

from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.dialects.native_client import ErrorMessage, TextMessage, TurnEndMessage, decode_message
from asgi_audio_proxy.errors import ClientTooSlow, UpstreamProtocolError
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, ServerEvent
from asgi_audio_proxy.session.channel import ClientChannel
from asgi_audio_proxy.session.stats import SessionStats
from tests.fakes import FakeClient
from tests.timing import within

LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def channel_for(client: FakeClient, max_bytes: int, stats: SessionStats) -> ClientChannel:
    return ClientChannel(client, NativeDialect(1000), max_bytes, stats, LOG)


def ev(item: str | bytes) -> ServerEvent:
    """A text event for a string (sent as ``{"type": "text"...}``), reply audio for bytes."""
    return ReplyAudio(item, 16_000) if isinstance(item, bytes) else ReplyText(item)


def short(frame: str | bytes) -> str | bytes:
    """A text frame's text (read by the native protocol's client half); a binary frame as is (the
    tests' audio is any bytes, not always whole samples)."""
    if isinstance(frame, bytes):
        return frame
    message = decode_message(frame)
    assert isinstance(message, TextMessage), message
    return message.text


def drain(client: FakeClient) -> list[bytes | str]:
    out = []
    while not client.outgoing.empty():
        out.append(client.outgoing.get_nowait())
    return out


async def test_messages_go_out_in_order_from_the_writer() -> None:
    client = FakeClient()
    channel = channel_for(client, 1000, SessionStats("s"))
    writer = asyncio.create_task(channel.write())
    for message in ("a", b"12", "b"):
        channel.emit(ev(message))
    async with asyncio.timeout(within(5)):
        got = [await client.outgoing.get() for _ in range(3)]
    writer.cancel()
    assert [short(f) for f in got] == ["a", b"12", "b"]


def test_a_slow_reader_loses_the_oldest_audio_is_told_once_then_is_cut_off() -> None:
    stats = SessionStats("s")
    channel = channel_for(FakeClient(), 10, stats)  # no writer: nothing is read
    channel.emit(ev(b"x" * 6))
    channel.emit(ev(b"y" * 6))  # 12 > 10: the first goes, and the client is told
    assert stats.reply_audio_dropped_bytes == 6
    with pytest.raises(ClientTooSlow):
        channel.emit(ev(b"z" * 6))  # 12 bytes lost: more than a whole outbox


async def test_goodbye_flushes_events_reports_the_error_and_closes() -> None:
    client = FakeClient()
    stats = SessionStats("s")
    channel = channel_for(client, 1000, stats)
    channel.emit(ev("event"))
    channel.emit(ev(b"audio"))
    await channel.goodbye(UpstreamProtocolError("garbage"), 1014, within(5))
    sent = drain(client)
    assert [short(f) for f in sent[:2]] == ["event", b"audio"]
    assert decode_message(sent[2]) == ErrorMessage("upstream_protocol_error", 1014, "garbage")
    assert client.close_code == 1014 and stats.reply_audio_dropped_bytes == 0


async def test_goodbye_to_a_too_slow_client_sends_events_but_no_audio() -> None:
    client = FakeClient()
    stats = SessionStats("s")
    channel = channel_for(client, 1000, stats)
    channel.emit(ev(b"audio"))
    channel.emit(ev("turn_end"))
    await channel.goodbye(ClientTooSlow("slow"), 1013, within(5))
    assert short(drain(client)[0]) == "turn_end"
    assert stats.reply_audio_dropped_bytes == 5


async def test_barge_in_drops_queued_audio() -> None:
    client = FakeClient()
    stats = SessionStats("s")
    channel = channel_for(client, 1000, stats)
    channel.emit(ev(b"12345"))
    channel.emit(ev("text"))
    channel.drop_audio()
    await channel.goodbye(None, 1000, within(5))
    assert [short(f) for f in drain(client)] == ["text"] and stats.reply_audio_dropped_bytes == 5


class PacedNative(NativeDialect):
    """The native wire with a short player buffer, as a phone line has."""

    playback_lead_ms: float | None = 80.0


async def test_paced_reply_audio_goes_in_pieces_of_half_the_lead() -> None:
    client = FakeClient()
    channel = ClientChannel(client, PacedNative(1000), 1 << 20, SessionStats("s"), LOG)
    writer = asyncio.create_task(channel.write())
    channel.emit(ReplyAudio(bytes(16_000), 16_000))  # one 0.5 s upstream chunk
    pieces = []
    async with asyncio.timeout(within(5)):
        while sum(map(len, pieces)) < 16_000:
            pieces.append(await client.outgoing.get())
    writer.cancel()
    assert max(map(len, pieces)) == 1280 and len(pieces) == 13  # 40 ms: never a lead ahead


async def test_a_stop_reaches_a_finished_reply_still_being_paced_out() -> None:
    client, stats = FakeClient(), SessionStats("s")
    channel = ClientChannel(client, PacedNative(1000), 1 << 20, stats, LOG)
    writer = asyncio.create_task(channel.write())
    channel.emit(ReplyStarted())
    channel.emit(ReplyAudio(bytes(32_000), 16_000))  # 1 s, all of it made already
    channel.emit(ReplyEnded("complete"))
    async with asyncio.timeout(within(5)):
        assert isinstance(await client.outgoing.get(), bytes)  # playing
    assert channel.cut_queued_reply(ReplyEnded("stopped", stopped_by="voice"))
    out: list[bytes | str] = []
    async with asyncio.timeout(within(5)):
        while not out or isinstance(out[-1], bytes):
            out.append(await client.outgoing.get())
    writer.cancel()
    assert decode_message(out[-1]) == TurnEndMessage("stopped")
    assert sum(len(f) for f in out if isinstance(f, bytes)) <= 2 * 1280  # at most what was in flight
    assert stats.reply_audio_dropped_bytes >= 32_000 - 4 * 1280
    assert not channel.cut_queued_reply(ReplyEnded("stopped"))  # nothing left to stop
