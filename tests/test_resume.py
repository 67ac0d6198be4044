"""Resuming after a cut, without sockets: the tokens, the bound on what is kept for a client
that is away, which ends may be a cut, and :class:`ResumableClient` over in-memory connections
(silence at real time while away, the grace's end, ``resumed`` then what was kept; with a
dialect that numbers its events, what was sent after the last event the client read)."""

from __future__ import annotations

import asyncio
import json

import pytest

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native import NativeDialect
from asgi_audio_proxy.dialects.realtime import ResumableRealtimeDialect
from asgi_audio_proxy.errors import ClientGone
from asgi_audio_proxy.events import Ready, ReplyText
from asgi_audio_proxy.session.resumable import ResumableClient
from asgi_audio_proxy.session.resume import (
    MAX_AWAY_AUDIO_S,
    ReplyBuffer,
    ResumeTokens,
    SentWindow,
    resumable,
)
from tests.timing import within


def test_a_token_works_once_and_only_for_its_origin_and_identity() -> None:
    tokens: ResumeTokens[str] = ResumeTokens()
    first = tokens.issue("session-a", "https://app.example", "alice")
    assert len(first) >= 32 and first != tokens.issue("session-b", "https://app.example", "alice")
    assert tokens.claim(first, "https://app.example", "alice").holder == "session-a"
    assert tokens.claim(first, "https://evil.example", "alice").holder is None
    assert tokens.claim(first, "https://app.example", "mallory").holder is None
    assert tokens.claim("x" + first[1:], "https://app.example", "alice").holder is None
    second = tokens.issue("session-a", "https://app.example", "alice")  # a resume: the next one
    assert tokens.claim(first, "https://app.example", "alice").holder is None
    assert tokens.claim(second, "https://app.example", "alice").holder == "session-a"
    tokens.withdraw("session-a")  # the session ended
    assert tokens.claim(second, "https://app.example", "alice").reason.startswith("the token is unknown")
    assert len(tokens) == 1


def test_the_buffer_keeps_ten_seconds_of_audio_and_counts_the_rest() -> None:
    buffer = ReplyBuffer(int(MAX_AWAY_AUDIO_S * 16_000 * 2))
    second = bytes(32_000)
    assert all(buffer.add(second) for _ in range(10))
    assert buffer.add('{"type":"text","content":"hi"}')  # events do not count as audio
    assert not buffer.add(b"\x00\x00")
    assert buffer.dropped_bytes == 2 and buffer.audio_bytes == 320_000
    assert len(buffer.drain()) == 11 and len(buffer) == 0 and buffer.audio_bytes == 0
    base64ish = ReplyBuffer(300, text_audio_ratio=0.75)
    assert base64ish.add("a" * 400) and not base64ish.add("a" * 4)


@pytest.mark.parametrize(("code", "cut"), [(None, True), (1006, True), (1005, True),
                                           (1000, False), (1001, False), (4000, False)])
def test_which_ends_leave_the_session_held(code: int | None, cut: bool) -> None:
    assert resumable(code) is cut


class Memory:
    """An in-memory client connection: frames in through ``incoming``, out into ``sent``."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | str | ClientGone] = asyncio.Queue()
        self.sent: list[bytes | str] = []
        self.closed: int | None = None
        self.was_closed = asyncio.Event()

    async def accept(self, subprotocol: str | None = None) -> None:
        return None

    async def receive(self) -> bytes | str:
        item = await self.incoming.get()
        if isinstance(item, ClientGone):
            raise item
        return item

    async def send(self, message: bytes | str) -> None:
        if self.closed is not None:
            raise ClientGone(1006)
        self.sent.append(message)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = code
        self.was_closed.set()


class Slow(Memory):
    """A connection whose sends yield to the loop, as a socket's do."""

    async def send(self, message: bytes | str) -> None:
        await asyncio.sleep(0)
        await super().send(message)


async def test_away_it_feeds_silence_at_real_time_keeps_replies_and_hands_them_over() -> None:
    tokens: ResumeTokens[ResumableClient] = ResumeTokens()
    first, second = Memory(), Memory()
    client = ResumableClient(first, tokens, NativeDialect(4096), origin=None, identity=None,
                             grace_s=5.0)
    await client.accept()
    token = client.issue("s1")
    first.incoming.put_nowait(b"\x01\x00")
    assert await client.receive() == b"\x01\x00"
    first.incoming.put_nowait(ClientGone(1006))
    first.closed = 1006
    loop = asyncio.get_running_loop()
    started = loop.time()
    silence = [await client.receive() for _ in range(10)]  # 0.2 s of it
    assert silence == [bytes(640)] * 10 and client.away
    assert 0.15 <= loop.time() - started < within(1.0)
    await client.send(b"\x02\x00" * 100)  # reply audio while away: kept
    await client.send('{"type":"turn_end","reason":"complete"}')
    assert tokens.claim(token, None, None).holder is client
    attach = asyncio.create_task(client.attach(second))
    second.incoming.put_nowait(b"\x03\x00")
    async with asyncio.timeout(within(2)):
        while (frame := await client.receive()) == bytes(640):
            pass
    assert frame == b"\x03\x00" and not client.away and client.resumes == 1
    resumed, audio, ended = second.sent
    assert '"type":"resumed"' in str(resumed) and token not in str(resumed)
    assert audio == b"\x02\x00" * 100 and "turn_end" in str(ended)
    assert tokens.claim(token, None, None).holder is None  # used
    await client.close(1000)
    await asyncio.wait_for(attach, within(2))  # the resumed connection's handler may return
    assert second.closed == 1000 and len(tokens) == 0


async def test_a_resume_before_the_cut_is_noticed_takes_over_the_pending_receive() -> None:
    """The old connection never tells of its cut (a half-open network): the resume replaces it,
    the receive waiting on it reads the new one instead, and the old one is closed with 1008.
    A cancel from outside still cancels that receive."""
    tokens: ResumeTokens[ResumableClient] = ResumeTokens()
    silent, second = Memory(), Slow()
    client = ResumableClient(silent, tokens, NativeDialect(4096), origin=None, identity=None,
                             grace_s=5.0)
    await client.accept()
    client.issue("s1")
    receiving = asyncio.create_task(client.receive())
    await asyncio.sleep(0)  # let it wait on the old connection (a step, not a wait for time)
    attach = asyncio.create_task(client.attach(second))
    second.incoming.put_nowait(b"\x03\x00")
    async with asyncio.timeout(within(2)):  # silence, while the resume is being taken in
        while (frame := await receiving) == bytes(640):
            receiving = asyncio.create_task(client.receive())
    assert frame == b"\x03\x00"
    assert client.resumes == 1 and not client.away and not client.expired
    await asyncio.wait_for(silent.was_closed.wait(), within(2))
    assert silent.closed == 1008
    receiving = asyncio.create_task(client.receive())
    await asyncio.sleep(0)
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    await client.close(1000)
    await asyncio.wait_for(attach, within(2))


async def test_the_grace_ends_the_session_and_a_close_frame_ends_it_at_once() -> None:
    tokens: ResumeTokens[ResumableClient] = ResumeTokens()
    conn = Memory()
    client = ResumableClient(conn, tokens, NativeDialect(4096), origin=None, identity=None,
                             grace_s=0.1)
    await client.accept()
    client.issue("s1")
    conn.incoming.put_nowait(ClientGone(1006))
    with pytest.raises(ClientGone):
        async with asyncio.timeout(within(2)):
            while True:
                await client.receive()
    assert client.expired and len(tokens) == 0
    closing = Memory()
    client = ResumableClient(closing, tokens, NativeDialect(4096), origin=None, identity=None,
                             grace_s=30.0)
    await client.accept()
    client.issue("s2")
    closing.incoming.put_nowait(ClientGone(1000))
    with pytest.raises(ClientGone) as gone:
        await asyncio.wait_for(client.receive(), within(2))
    assert gone.value.code == 1000 and not client.expired


def test_a_token_names_its_replica_and_another_replica_says_where_the_session_is() -> None:
    here: ResumeTokens[str] = ResumeTokens("host-a-1")
    there: ResumeTokens[str] = ResumeTokens("host-b-1")
    token = here.issue("session", None, None)
    assert token.startswith("host-a-1.")
    claim = there.claim(token, None, None)
    assert claim.holder is None and "held by replica host-a-1" in claim.reason
    assert there.claim("no-dot", None, None).reason.startswith("the token is unknown")
    with pytest.raises(ValueError, match="replica name"):
        ResumeTokens("a.b")


def test_the_sent_window_keeps_the_newest_frames_and_finds_what_followed_the_last_read() -> None:
    window = SentWindow(max_audio_bytes=300, text_audio_ratio=0.0)
    for n in range(5):
        window.add(bytes([n]) * 100)  # audio: only the newest 300 bytes stay
    assert len(window) == 3
    assert window.after(lambda f: f[:1] == b"\x03") == [b"\x04" * 100]
    assert window.after(lambda f: f[:1] == b"\x04") == []  # it read everything
    assert window.after(lambda f: f[:1] == b"\x00") is None  # older than the window
    window.clear()
    assert len(window) == 0 and window.after(lambda f: True) is None


async def test_a_realtime_resume_sends_again_what_followed_the_last_event_read() -> None:
    tokens: ResumeTokens[ResumableClient] = ResumeTokens()
    wire = ResumableRealtimeDialect(ProxyConfig())
    first, second = Memory(), Memory()
    client = ResumableClient(first, tokens, wire, origin=None, identity=None, grace_s=5.0)
    await client.accept()
    token = client.issue("s1")
    for frame in [*wire.send(Ready("s1", "v", token)), *wire.send(ReplyText("one")),
                  *wire.send(ReplyText("two"))]:
        await client.send(frame)  # all taken by the socket; the client read up to "one" only
    ids = [json.loads(f)["event_id"] for f in first.sent]
    read = next(i for i, f in enumerate(first.sent) if '"one"' in str(f))
    first.incoming.put_nowait(ClientGone(1006))
    first.closed = 1006
    assert await client.receive() != b""  # away now: silence stands in for the client
    await client.send(wire.send(ReplyText("three"))[0])  # while away: kept
    attach = asyncio.create_task(client.attach(second, last_event_id=ids[read]))
    second.incoming.put_nowait('{"type":"input_audio_buffer.clear"}')
    async with asyncio.timeout(within(2)):
        while "clear" not in str(await client.receive()):
            pass
    resumed, *rest = [json.loads(f) for f in second.sent]
    assert resumed["type"] == "session.resumed" and resumed["resume_token"] != token
    assert [e["event_id"] for e in rest[:len(ids) - read - 1]] == ids[read + 1:]
    assert '"three"' in json.dumps(rest[-1])
    await client.close(1000)
    await asyncio.wait_for(attach, within(2))
