"""Turn-taking figures against the simulator: first reply audio (proxy vs direct) and barge-in.

Owns: two real-time clients run in this process against server processes: one through the
proxy (the client protocol), one straight to the simulator (the upstream protocol, as a client
with no proxy would speak it: 200 ms WAV messages, SSE, decoding the reply WAV itself). Each
turn is 1.2 s of a 440 Hz tone then silence, in 20 ms frames at real-time pace, so the
simulator's VAD ends it (about 1 s of silence). Must not: start or stop processes.

- *first reply audio*: from the last tone frame sent to the first reply PCM in hand.
- *barge-in*: ``{"type":"stop"}`` sent after the reply's second PCM frame; the figure is the time
  until ``turn_end`` ``stopped`` arrives, and the PCM frames that arrive after that
  ``turn_end`` (must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from httpx_sse import EventSource
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.audio import b64decode_strict, wav_to_pcm16
from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.dialects.native import StopControl
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ProxyMessage,
    ReadyMessage,
    TurnEndMessage,
    decode_message,
    encode_control,
)
from asgi_audio_proxy.upstreams.minicpm.wire import (
    COMPLETIONS_BODY,
    audio_message,
    init_options_body,
    make_uid,
    parse_reply_data,
)
from tests.signals import tone

__all__ = ["TurnFigures", "barge_in", "first_audio_direct", "first_audio_proxy"]

FRAME_S = 0.02
_SPEECH_S = 1.2
_TURN_TIMEOUT_S = 8.0
_QUIET_S = 0.8  # after a reply, so the simulator's echo guard has lifted


def _frames(seconds: float, amplitude: float) -> list[bytes]:
    pcm = tone(440, round(seconds / FRAME_S) * FRAME_S, amplitude=amplitude)
    return [pcm[i : i + 640] for i in range(0, len(pcm), 640)]


_SPEECH = _frames(_SPEECH_S, 0.3)
_SILENCE = bytes(640)


@dataclass
class TurnFigures:
    first_audio_ms: list[float] = field(default_factory=list)
    stop_to_turn_end_ms: list[float] = field(default_factory=list)
    pcm_after_turn_end: int = 0
    pcm_between_stop_and_turn_end: int = 0
    failures: list[str] = field(default_factory=list)


class _Pacer:
    """Real-time 20 ms frame schedule."""

    def __init__(self) -> None:
        self._next = time.perf_counter()

    async def tick(self) -> None:
        self._next += FRAME_S
        delay = self._next - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def _proxy_client(url: str) -> ClientConnection:
    ws = await connect(url, compression=None, max_queue=None)
    first = decode_message(await ws.recv())
    if not isinstance(first, ReadyMessage):
        await ws.close()
        raise RuntimeError(f"proxy did not say ready: {first}")
    return ws


#: what the proxy said, decoded, and when it arrived
_Inbox = asyncio.Queue[tuple[float, ProxyMessage]]
_STOP = encode_control(StopControl())


@contextlib.asynccontextmanager
async def _proxy_session(url: str) -> AsyncIterator[tuple[ClientConnection, _Inbox]]:
    """A client connected to the proxy, with a reader stamping what it receives into a queue."""
    ws = await _proxy_client(url)
    inbox: _Inbox = asyncio.Queue()
    reader = asyncio.create_task(_read_into(ws, inbox))
    try:
        yield ws, inbox
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await reader
        await ws.close()


async def _speak(ws: ClientConnection) -> _Pacer:
    """One utterance at real-time pace; returns the pacer, to go on at the same pace."""
    pacer = _Pacer()
    for frame in _SPEECH:
        await ws.send(frame)
        await pacer.tick()
    return pacer


async def first_audio_proxy(url: str, turns: int) -> TurnFigures:
    """``turns`` turns through the proxy; first reply audio after the last tone frame."""
    figures = TurnFigures()
    async with _proxy_session(url) as (ws, inbox):
        for _ in range(turns):
            pacer = await _speak(ws)
            spoke_until = time.perf_counter()
            first: float | None = None
            ended = False
            deadline = spoke_until + _TURN_TIMEOUT_S
            while not ended and time.perf_counter() < deadline:
                await ws.send(_SILENCE)
                while not inbox.empty():
                    at, message = inbox.get_nowait()
                    if isinstance(message, AudioMessage) and first is None:
                        first = at
                    elif isinstance(message, TurnEndMessage):
                        ended = True
                await pacer.tick()
            if first is None:
                figures.failures.append("proxy: no reply audio within the turn timeout")
            else:
                figures.first_audio_ms.append((first - spoke_until) * 1000)
            await _send_silence(ws, _QUIET_S)
    return figures


async def first_audio_direct(http_url: str, turns: int) -> TurnFigures:
    """The same turns spoken straight to the simulator, with no proxy between."""
    figures = TurnFigures()
    uid = make_uid()
    ws_url = "ws" + http_url[len("http"):] + f"/ws/stream?uid={uid}"
    async with httpx.AsyncClient(trust_env=False, base_url=http_url, headers={"uid": uid}) as http:
        options = await http.post("/api/v1/init_options", json=init_options_body(UpstreamOptions()))
        options.raise_for_status()
        first_body = await _open_completions(http)
        async with connect(ws_url, compression=None, max_queue=None) as ws:
            acks = asyncio.create_task(_discard(ws))
            body = first_body
            try:
                for _ in range(turns):
                    heard: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                    reading = asyncio.create_task(_read_reply(body, heard))
                    pacer, pending = _Pacer(), bytearray()
                    frames = iter(_SPEECH)
                    spoke_until = 0.0
                    deadline = time.perf_counter() + _SPEECH_S + _TURN_TIMEOUT_S
                    while not heard.done() and time.perf_counter() < deadline:
                        frame = next(frames, None)
                        if frame is None and not spoke_until:
                            spoke_until = time.perf_counter()
                        pending += frame or _SILENCE
                        if len(pending) >= 6400:  # one 200 ms message, as the proxy sends it
                            await ws.send(audio_message(bytes(pending[:6400]), uid, 0))
                            del pending[:6400]
                        await pacer.tick()
                    if heard.done():
                        figures.first_audio_ms.append((heard.result() - spoke_until) * 1000)
                        with contextlib.suppress(TimeoutError, httpx.HTTPError):
                            async with asyncio.timeout(_TURN_TIMEOUT_S):
                                await reading
                    else:
                        figures.failures.append("direct: no reply audio within the turn timeout")
                    reading.cancel()
                    await body.aclose()
                    body = await _open_completions(http)
                    await asyncio.sleep(_QUIET_S)
            finally:
                acks.cancel()
                await body.aclose()
    return figures


async def barge_in(url: str, turns: int) -> TurnFigures:
    """Stop each reply after its second PCM frame; time the cut, count audio after it."""
    figures = TurnFigures()
    async with _proxy_session(url) as (ws, inbox):
        for _ in range(turns):
            pacer = await _speak(ws)
            pcm, stopped_at, cut_at = 0, 0.0, 0.0
            deadline = time.perf_counter() + _TURN_TIMEOUT_S
            while not cut_at and time.perf_counter() < deadline:
                await ws.send(_SILENCE)
                while not inbox.empty():
                    at, message = inbox.get_nowait()
                    if isinstance(message, AudioMessage):
                        pcm += 1
                        if stopped_at:
                            figures.pcm_between_stop_and_turn_end += 1
                        elif pcm == 2:
                            stopped_at = time.perf_counter()
                            await ws.send(_STOP)
                    elif isinstance(message, TurnEndMessage) and stopped_at:
                        cut_at = at
                await pacer.tick()
            if not cut_at:
                figures.failures.append("barge-in: no turn_end 'stopped' within the turn timeout")
                continue
            figures.stop_to_turn_end_ms.append((cut_at - stopped_at) * 1000)
            await _send_silence(ws, 1.5)  # the rest of the upstream's reply would arrive here
            while not inbox.empty():
                _, message = inbox.get_nowait()
                if isinstance(message, AudioMessage):
                    figures.pcm_after_turn_end += 1
    return figures


async def _send_silence(ws: ClientConnection, seconds: float) -> None:
    pacer = _Pacer()
    for _ in range(round(seconds / FRAME_S)):
        await ws.send(_SILENCE)
        await pacer.tick()


async def _read_into(ws: ClientConnection, inbox: _Inbox) -> None:
    """Decode each frame as it comes (one the protocol does not have ends the run, loudly)."""
    async for frame in ws:
        inbox.put_nowait((time.perf_counter(), decode_message(frame)))


async def _discard(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def _open_completions(http: httpx.AsyncClient) -> httpx.Response:
    request = http.build_request("POST", "/api/v1/completions", json=COMPLETIONS_BODY,
                                 timeout=httpx.Timeout(5.0, read=None))
    response = await http.send(request, stream=True)
    response.raise_for_status()
    return response


async def _read_reply(body: httpx.Response, heard: asyncio.Future[float]) -> None:
    """Read one reply body; ``heard`` gets the time its first reply (not echo) audio is PCM."""
    seen_echo = False
    async for event in EventSource(body).aiter_sse():
        if not event.data:
            continue
        message = parse_reply_data(event.data)
        audio = getattr(message, "audio_b64", None)
        if not seen_echo:
            seen_echo = True
        elif audio and not heard.done():
            wav_to_pcm16(b64decode_strict(audio))  # what a direct client must do to play it
            heard.set_result(time.perf_counter())
