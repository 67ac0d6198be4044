"""The Twilio dialect on a real socket against the Twilio-like peer, with a few-line ASGI app in
place of the session: replies play out in real time, marks come back as their audio plays, and
``clear`` drops the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette import status
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_audio_proxy.dialects.twilio import TwilioDialect
from asgi_audio_proxy.events import AudioIn, EndSession, ReplyAudio, ReplyEnded, ReplyStarted, StopReply
from tests.dialects.twilio_peer import TwilioPeer
from tests.servers import serve_uvicorn
from tests.signals import tone

REPLY_MS = 400


class ReplyOnce:
    """Answers the caller's first audio with one 400 ms reply sent at once (no pacing, so the
    peer's playback clock alone decides when marks come back); a stop cuts it."""

    def __init__(self) -> None:
        self.dialects: list[TwilioDialect] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        dialect = TwilioDialect(stop_digits="*")
        self.dialects.append(dialect)
        has_replied = False
        try:
            while True:
                for event in dialect.receive(await ws.receive_text()):
                    frames = []
                    if isinstance(event, AudioIn) and not has_replied:
                        has_replied = True
                        for reply in (ReplyStarted(), ReplyAudio(tone(440, REPLY_MS / 1000, 8_000), 8000),
                                      ReplyEnded("complete")):
                            frames += dialect.send(reply)
                    elif isinstance(event, StopReply):
                        frames = dialect.send(ReplyEnded("stopped", event.reason))
                    elif isinstance(event, EndSession):
                        await ws.close(status.WS_1000_NORMAL_CLOSURE)
                        return
                    for frame in frames:
                        await ws.send_text(str(frame))
        except WebSocketDisconnect:
            return


@pytest.fixture
async def bot() -> AsyncIterator[tuple[ReplyOnce, str]]:
    app = ReplyOnce()
    async with serve_uvicorn(app) as port:
        yield app, f"ws://127.0.0.1:{port}/twilio"


async def test_marks_come_back_as_their_audio_plays(bot: tuple[ReplyOnce, str]) -> None:
    app, url = bot
    async with TwilioPeer.call(url) as peer:
        await peer.wait_for(lambda p: len(p.of("mark")) > 0 and
                            len(p.echoed_marks) == len(p.of("mark")))
        played_s = peer.echoed_at[-1] - peer.of("media")[0].at
        assert REPLY_MS / 1000 - 0.02 <= played_s <= REPLY_MS / 1000 + 0.25
        assert peer.heard_ulaw() == peer.received_ulaw()
        await peer.wait_for(lambda p: app.dialects[0].playback.pending_ms == 0)
        assert app.dialects[0].playback.reply_heard_ms == REPLY_MS


async def test_a_stop_key_clears_what_has_not_played(bot: tuple[ReplyOnce, str]) -> None:
    app, url = bot
    async with TwilioPeer.call(url) as peer:
        await peer.wait_for(lambda p: len(p.echoed_marks) >= 2)
        await peer.press("*")
        await peer.wait_for(lambda p: bool(p.of("clear")))
        # the pending marks came back at once, and what had not played is gone
        await peer.wait_for(lambda p: len(p.echoed_marks) == len(p.of("mark")), timeout_s=0.1)
        assert len(peer.heard_ulaw()) < len(peer.received_ulaw())
        await peer.wait_for(lambda p: app.dialects[0].playback.pending_ms == 0)
        counts = app.dialects[0].counts
        assert counts.heard_ms + counts.cleared_ms == REPLY_MS and counts.cleared_ms > 0


async def test_stop_ends_the_stream_cleanly(bot: tuple[ReplyOnce, str]) -> None:
    _, url = bot
    async with TwilioPeer.call(url) as peer:
        await peer.stop()
        await peer.wait_for(lambda p: p.close_code is not None)
        assert peer.close_code == status.WS_1000_NORMAL_CLOSURE
