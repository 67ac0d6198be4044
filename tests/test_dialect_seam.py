"""The client-dialect seam: a wire format written here, served beside the native one.

``Json8kDialect`` speaks JSON text frames only, with base64 PCM16 at 8 kHz both ways:
``{"audio": "<b64>"}`` and ``{"stop": true}`` in; ``{"event": "ready"}``, ``{"event": "text",
"text": ...}``, ``{"event": "audio", "pcm8k": "<b64>"}``, ``{"event": "done", "reason": ...}`` and
``{"event": "error", ...}`` out. Nothing in the package knows it: registered on a path of the
middleware, it completes a turn through the simulator (the session resamples 8 kHz to the
upstream's rate and the reply back to 8 kHz), and a native client on the other path of the same
app still works.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig, SessionStats
from asgi_audio_proxy.dialects.base import Frame
from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from asgi_audio_proxy.errors import BadClientPayload
from asgi_audio_proxy.events import (
    AudioIn,
    ClientEvent,
    ErrorEvent,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyText,
    ServerEvent,
    StopReply,
)
from tests.clients import ProxyClient, at_real_time, next_json
from tests.conftest import running_simulator
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

RATE_HZ = 8_000
FRAME_BYTES = 320  # 20 ms at 8 kHz


def _json(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class Json8kDialect:
    """JSON-wrapped base64 PCM16 at 8 kHz, both ways (a :class:`ClientDialect`)."""

    name = "json8k"
    subprotocol: str | None = None
    output_rate_hz = RATE_HZ
    playback_lead_ms: float | None = None
    wants_speech_events = False
    binary_pcm_rate_hz = None

    def __init__(self, max_text_bytes: int) -> None:
        self._max_text = max_text_bytes

    def receive(self, frame: Frame) -> list[ClientEvent]:
        if isinstance(frame, bytes) or len(frame) > self._max_text:
            raise BadClientPayload("json8k takes JSON text frames of at most "
                                   f"{self._max_text} characters")
        try:
            message = json.loads(frame)
            if isinstance(message, dict) and "audio" in message:
                pcm = base64.b64decode(message["audio"], validate=True)
                return [AudioIn(pcm, RATE_HZ, len(frame))]
        except (ValueError, TypeError, binascii.Error) as exc:
            raise BadClientPayload(f"not a json8k message: {exc}") from exc
        if isinstance(message, dict) and message.get("stop") is True:
            return [StopReply("client")]
        raise BadClientPayload('expected {"audio": "<base64>"} or {"stop": true}')

    def send(self, event: ServerEvent) -> list[Frame]:
        match event:
            case ReplyAudio(pcm=pcm):
                return [_json({"event": "audio", "pcm8k": base64.b64encode(pcm).decode()})]
            case ReplyText(text=text):
                return [_json({"event": "text", "text": text})]
            case ReplyEnded(reason=reason):
                return [_json({"event": "done", "reason": reason})]
            case Ready():
                return [_json({"event": "ready"})]
            case ErrorEvent(kind=kind, message=message):
                return [_json({"event": "error", "error": kind, "message": message})]
        return []  # the rest (queued, config applied, speech events) this client does not hear


def json8k_dialect(scope: Scope, config: ProxyConfig) -> Json8kDialect:
    """The dialect's factory: what ``AudioProxyMiddleware(dialects=...)`` takes."""
    return Json8kDialect(config.max_text_bytes)


class Json8kClient:
    """A client of the json8k dialect over the real ``websockets`` client."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next_event(self, timeout_s: float = 10) -> dict[str, Any]:
        return await next_json(self.ws, timeout_s)  # json8k sends text frames only

    async def send_paced(self, pcm: bytes, *, paced: bool = True) -> None:
        start = asyncio.get_running_loop().time()
        for i in range(0, len(pcm), FRAME_BYTES):
            piece = pcm[i:i + FRAME_BYTES]
            await self.ws.send(_json({"audio": base64.b64encode(piece).decode()}))
            if paced:  # the simulator's VAD needs real time
                await at_real_time(start, (i + len(piece)) / (2 * RATE_HZ))

    async def read_reply(self, timeout_s: float = 15) -> tuple[str, bytes, dict[str, Any]]:
        """Text, 8 kHz audio and the ``done`` event of one reply."""
        text, audio = [], bytearray()
        async with asyncio.timeout(within(timeout_s)):
            while (event := await self.next_event(timeout_s))["event"] != "done":
                if event["event"] == "text":
                    text.append(event["text"])
                elif event["event"] == "audio":
                    audio += base64.b64decode(event["pcm8k"])
                else:
                    raise AssertionError(f"unexpected event in a reply: {event}")
        return "".join(text), bytes(audio), event

    async def say(self, pcm: bytes, *, paced: bool = True) -> tuple[str, bytes, dict[str, Any]]:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.send_paced(pcm, paced=paced))
            reply = tg.create_task(self.read_reply())
        return reply.result()


async def host_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app the middleware wraps: plain HTTP, to show it still gets its own requests."""
    await PlainTextResponse("the host app\n")(scope, receive, send)


class Ended:
    """``on_session_end``: keeps each session's stats; :meth:`wait` for ``n`` of them."""

    def __init__(self) -> None:
        self.stats: list[SessionStats] = []
        self._changed = asyncio.Event()

    def __call__(self, stats: SessionStats) -> None:
        self.stats.append(stats)
        self._changed.set()

    async def wait(self, n: int, timeout_s: float = 10) -> list[SessionStats]:
        async with asyncio.timeout(within(timeout_s)):
            while len(self.stats) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.stats


def test_json8k_frames_decode_to_events_and_back() -> None:
    dialect = Json8kDialect(8192)
    pcm = tone(440, 0.02, RATE_HZ)
    frame = _json({"audio": base64.b64encode(pcm).decode()})
    assert dialect.receive(frame) == [AudioIn(pcm, RATE_HZ, len(frame))]
    assert dialect.receive('{"stop":true}') == [StopReply("client")]
    assert dialect.send(ReplyAudio(pcm, RATE_HZ)) == [
        _json({"event": "audio", "pcm8k": base64.b64encode(pcm).decode()})]
    assert dialect.send(ReplyEnded("complete")) == ['{"event":"done","reason":"complete"}']
    for bad in (b"\x00\x01", "[]", '{"audio": "@@"}', '{"volume": 11}'):
        try:
            dialect.receive(bad)
        except BadClientPayload:
            continue
        raise AssertionError(f"{bad!r} was taken")


async def test_a_dialect_from_the_tests_completes_a_turn_beside_the_native_one() -> None:
    ended = Ended()
    async with running_simulator() as upstream:
        app = AudioProxyMiddleware(host_app, path="/audio_proxy",
                                   config=ProxyConfig(upstream_url=upstream.url),
                                   dialects={"/json8k": json8k_dialect}, on_session_end=ended)
        try:
            async with serve_uvicorn(app) as port:
                async with connect(f"ws://127.0.0.1:{port}/json8k", open_timeout=within(10)) as ws:
                    client = Json8kClient(ws)
                    assert await client.next_event() == {"event": "ready"}
                    await ws.send("not json")  # a bad frame costs an error in its own words
                    error = await client.next_event()
                    assert error["event"] == "error" and error["error"] == "bad_payload", error
                    text, audio, done = await client.say(tone(440, 1.0, RATE_HZ)
                                                         + silence(1.0, RATE_HZ))
                assert done == {"event": "done", "reason": "complete"}
                assert text.startswith("Turn 1: heard"), text
                assert abs(dominant_frequency_hz(audio, RATE_HZ) - 440) < 5
                await ended.wait(1)  # one upstream: its lease is free once the session ended

                async with ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as native:
                    assert native.proxy.upstream_version == "2.6"
                    reply = await native.say(tone(660, 1.0) + silence(1.0))
                assert reply.ending == TurnEndMessage("complete")
                assert abs(dominant_frequency_hz(bytes(reply.audio)) - 660) < 5
                stats = await ended.wait(2)
        finally:
            await app.proxy.aclose()
    assert all(s.balanced for s in stats), stats
    assert all(s.replies == 1 and s.sent_bytes > 0 for s in stats), stats
