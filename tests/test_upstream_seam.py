"""The upstream-adapter seam: a model server written here, in process, behind the proxy.

``EchoAdapter`` implements :class:`~asgi_audio_proxy.upstreams.base.UpstreamAdapter` with no
network: it takes PCM16 at 24 kHz, and once 0.4 s of quiet follows sound it replies with what it
heard (text, then the audio in 100 ms pieces, at 24 kHz). Its pure part, ``EchoModel``, turns
audio into :mod:`~asgi_audio_proxy.events`; the adapter moves audio to it from a bounded queue and
accounts for every byte. Passed as ``upstream_factory=``, it serves a native client and a json8k
client (the dialect of ``test_dialect_seam``) in one app, each resampled once each way by the
session, and every session's ledger balances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping

import httpx
import numpy as np
from websockets.asyncio.client import connect

from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig, UpstreamOptions
from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from asgi_audio_proxy.events import (
    AudioOutcome,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    UpstreamEvent,
)
from asgi_audio_proxy.upstreams.base import Emit
from asgi_audio_proxy.upstreams.kind import new_http_client
from tests.clients import ProxyClient
from tests.fakes import OpenLeaser
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_dialect_seam import RATE_HZ, Ended, Json8kClient, host_app, json8k_dialect
from tests.timing import within

ECHO_RATE_HZ = 24_000
BLOCK_BYTES = 960  # 20 ms at 24 kHz: the unit the model judges sound or quiet in
QUIET_BYTES = 2 * ECHO_RATE_HZ * 4 // 10  # 0.4 s of quiet ends a turn
PIECE_BYTES = 2 * ECHO_RATE_HZ // 10  # reply audio in 100 ms pieces
SOUND_RMS = 300.0  # PCM16 units, about -40 dBFS


class EchoModel:
    """The model, sans I/O: feed PCM16 at 24 kHz, get reply events once a turn ends."""

    def __init__(self) -> None:
        self._pending = bytearray()  # less than one block
        self._heard = bytearray()  # this turn, up to the end of its last sound
        self._quiet = 0  # bytes of quiet since the last sound

    def feed(self, pcm: bytes) -> list[UpstreamEvent]:
        self._pending += pcm
        events: list[UpstreamEvent] = []
        while len(self._pending) >= BLOCK_BYTES:
            block = bytes(self._pending[:BLOCK_BYTES])
            del self._pending[:BLOCK_BYTES]
            if np.sqrt(np.mean(np.frombuffer(block, "<i2").astype(np.float64) ** 2)) >= SOUND_RMS:
                self._heard += bytes(self._quiet) + block  # the quiet inside the turn is kept
                self._quiet = 0
            elif self._heard:
                self._quiet += BLOCK_BYTES
                if self._quiet >= QUIET_BYTES:
                    events += self.reply()
        return events

    def reply(self) -> list[UpstreamEvent]:
        """The turn is over: echo what was heard (nothing, if it was all quiet)."""
        heard, self._heard, self._quiet = bytes(self._heard), bytearray(), 0
        if not heard:
            return []
        ms = round(len(heard) / 2 / ECHO_RATE_HZ * 1000)
        pieces = [ReplyAudio(heard[i:i + PIECE_BYTES], ECHO_RATE_HZ)
                  for i in range(0, len(heard), PIECE_BYTES)]
        return [ReplyStarted(), ReplyText(f"echo of {ms} ms"), *pieces, ReplyEnded("complete")]


class EchoAdapter:
    """An :class:`UpstreamAdapter` over :class:`EchoModel`, in process.

    Replies are handed over whole as soon as a turn ends, so there is never one left to stop.
    """

    def __init__(self, max_queued: int = 64) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_queued)  # full: back-pressure
        self._model = EchoModel()
        self.options: list[UpstreamOptions] = []

    @property
    def version(self) -> str:
        return "echo-1"

    @property
    def input_rate_hz(self) -> int:
        return ECHO_RATE_HZ

    async def connect(self, options: UpstreamOptions) -> None:
        self.options.append(options)

    async def configure(self, options: UpstreamOptions) -> None:
        self.options.append(options)

    async def send_audio(self, pcm: bytes) -> None:
        await self._queue.put(pcm)

    async def commit(self) -> None:
        await self._queue.put(b"")  # an empty piece: reply now

    def clear(self) -> int:
        dropped = 0
        while not self._queue.empty():
            dropped += len(self._queue.get_nowait())
        return dropped

    def stop(self, resend_from_ms: float | None = None) -> bool:
        return False

    async def run(self, emit: Emit) -> None:
        while True:
            pcm = await self._queue.get()
            if pcm:
                emit(AudioOutcome(len(pcm), "sent", "heard"))
            for event in self._model.feed(pcm) if pcm else self._model.reply():
                emit(event)

    def leftover(self) -> Mapping[str, int]:
        queued = self.clear()
        return {"session_end": queued} if queued else {}

    async def aclose(self) -> None:
        return None


def echo_adapter(url: str, config: ProxyConfig, http_client: httpx.AsyncClient,
                 log: logging.LoggerAdapter[logging.Logger]) -> EchoAdapter:
    """The adapter's factory: what ``upstream_factory=`` takes (the leased ``url`` unused)."""
    return EchoAdapter()


def echoed_ms(text: str) -> int:
    match = re.fullmatch(r"echo of (\d+) ms", text)
    assert match, text
    return int(match[1])


@contextlib.asynccontextmanager
async def json8k_client(port: int) -> AsyncIterator[Json8kClient]:
    """A json8k client on ``port`` that has read its ``ready``."""
    async with connect(f"ws://127.0.0.1:{port}/json8k", open_timeout=within(10)) as ws:
        client = Json8kClient(ws)
        assert await client.next_event() == {"event": "ready"}
        yield client


def test_echo_model_replies_after_quiet_with_what_it_heard() -> None:
    sound = tone(440, 0.5, ECHO_RATE_HZ)
    model = EchoModel()
    assert model.feed(silence(0.5, ECHO_RATE_HZ) + sound) == []
    events = [e for i in range(0, 2 * 24_000, 777)  # odd pieces: blocks carried across feeds
              for e in model.feed(silence(1.0, ECHO_RATE_HZ)[i:i + 777])]
    assert events[:2] == [ReplyStarted(), ReplyText("echo of 500 ms")]
    assert b"".join(e.pcm for e in events if isinstance(e, ReplyAudio)) == sound
    assert events[-1] == ReplyEnded("complete")


async def test_an_adapter_from_the_tests_serves_native_and_json8k_clients() -> None:
    ended = Ended()
    app = AudioProxyMiddleware(host_app, path="/audio_proxy",
                               config=ProxyConfig(upstream_url="http://echo.invalid"),
                               dialects={"/json8k": json8k_dialect}, on_session_end=ended,
                               leaser=OpenLeaser("http://echo.invalid"), upstream_factory=echo_adapter)
    try:
        async with serve_uvicorn(app) as port:
            # both at once: no queue in front of an in-process model
            async with (ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as native,
                        json8k_client(port) as json8k, asyncio.TaskGroup() as tg):
                assert native.proxy.upstream_version == "echo-1"
                native_reply = tg.create_task(native.say(tone(660, 1.0) + silence(0.6)))
                json8k_reply = tg.create_task(json8k.say(
                    tone(440, 1.0, RATE_HZ) + silence(0.6, RATE_HZ), paced=False))
            stats = await ended.wait(2)
    finally:
        await app.proxy.aclose()
    turn = native_reply.result()
    assert turn.ending == TurnEndMessage("complete")
    # the tone, give or take a 20 ms block (the input resampler's delay), at 16 kHz, with the
    # reply resampler's tail (its filter's last few ms, flushed as the reply ends)
    assert 1000 <= echoed_ms(turn.text) <= 1040, turn.text
    assert 0 <= len(turn.audio) / 32 - echoed_ms(turn.text) < 20, len(turn.audio)
    assert abs(dominant_frequency_hz(bytes(turn.audio)) - 660) < 5
    text, audio, done = json8k_reply.result()
    assert done == {"event": "done", "reason": "complete"}
    assert 1000 <= echoed_ms(text) <= 1040, text
    assert 0 <= len(audio) / 16 - echoed_ms(text) < 20, len(audio)  # at 8 kHz
    assert abs(dominant_frequency_hz(audio, RATE_HZ) - 440) < 5
    assert all(s.balanced and s.replies == 1 and s.acks["heard"] > 0 for s in stats), stats



async def test_the_http_clients_proxies_make_share_one_tls_context() -> None:
    # making one reads the whole CA bundle, tens of ms on the event loop: once per process
    clients = [new_http_client(), new_http_client()]
    try:
        contexts = {id(c._transport._pool._ssl_context) for c in clients}  # type: ignore[attr-defined]
        assert len(contexts) == 1
    finally:
        for client in clients:
            await client.aclose()
