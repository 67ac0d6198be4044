"""Two proxies in a row: an outer one whose upstream is the Realtime adapter, and an inner one that
serves the Realtime dialect on ``/v1/realtime`` in front of the simulator.

``async with chain(settings) as c``: the simulator, the inner proxy (its WebSocket traffic kept by
a :class:`FrameLog`) and the outer proxy (native on ``/audio_proxy``, Realtime on ``/v1/realtime``,
Twilio on ``/twilio``; the inner proxy's ``http://`` URL leased to every session), each on a
loopback port. Also :class:`Microphone` (a client's audio at real-time pace, with a filler when
it says nothing) and :func:`realtime_server` (a scripted Realtime server for the faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.server import ServerConnection, serve

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from asgi_audio_proxy.upstreams.realtime import RealtimeSettings, realtime_upstream
from tests.clients import at_real_time
from tests.conftest import running_simulator
from tests.dialects.test_realtime_sdk import not_found
from tests.fakes import OpenLeaser
from tests.servers import serve_uvicorn
from tests.test_dialect_seam import Ended
from tests.timing import within

__all__ = ["Chain", "FrameLog", "Microphone", "chain", "realtime_server"]


class FrameLog:
    """An ASGI wrapper that keeps what each WebSocket said and was told (JSON text frames, audio
    replaced by its length), and the handshakes; :meth:`wait_for` awaits a condition on it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.scopes: list[Scope] = []
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.scopes.append(scope)

        async def logged_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive" and message.get("text"):
                self._keep(self.received, message["text"])
            return message

        async def logged_send(message: Message) -> None:
            if message["type"] == "websocket.send" and message.get("text"):
                self._keep(self.sent, message["text"])
            await send(message)

        await self.app(scope, logged_receive, logged_send)

    def _keep(self, into: list[dict[str, Any]], text: str) -> None:
        event = json.loads(text)
        for key in ("audio", "delta"):
            if key in event and event["type"].endswith(("append", "audio.delta")):
                event[key] = len(event[key])
        into.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    def received_types(self) -> list[str]:
        return [event["type"] for event in self.received]

    def of(self, kind: str, *, sent: bool = False) -> list[dict[str, Any]]:
        return [event for event in (self.sent if sent else self.received) if event["type"] == kind]

    def headers(self, index: int = -1) -> dict[str, str]:
        return {k.decode().lower(): v.decode() for k, v in self.scopes[index]["headers"]}

    async def wait_for(self, predicate: Callable[[FrameLog], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(within(timeout_s)):
            while not predicate(self):
                await self._changed.wait()


@dataclass
class Chain:
    sim: UpstreamSimulator
    inner: FrameLog
    inner_url: str
    outer_port: int
    ended: Ended = field(default_factory=Ended)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.outer_port}{path}"


@contextlib.asynccontextmanager
async def chain(settings: RealtimeSettings | None = None, *, sim: dict[str, Any] | None = None,
                inner: dict[str, Any] | None = None, **outer: Any) -> AsyncIterator[Chain]:
    """The simulator, the inner proxy in front of it, the outer proxy in front of that."""
    async with running_simulator(**(sim or {})) as up:
        inner_proxy = AudioProxyMiddleware(
            not_found, config=ProxyConfig(upstream_url=up.url, chunk_duration=0.2, **(inner or {})),
            dialects={"/v1/realtime": realtime_dialect})
        log = FrameLog(inner_proxy)
        try:
            async with serve_uvicorn(log) as inner_port:
                inner_url = f"http://127.0.0.1:{inner_port}"  # the adapter dials ws://…/v1/realtime
                ended = Ended()
                outer_proxy = AudioProxyMiddleware(
                    not_found, config=ProxyConfig(upstream_url=inner_url, **outer),
                    dialects={"/v1/realtime": realtime_dialect, "/twilio": twilio_dialect},
                    leaser=OpenLeaser(inner_url), on_session_end=ended,
                    upstream_factory=realtime_upstream(settings or RealtimeSettings(model="gpt-realtime")))
                try:
                    async with serve_uvicorn(outer_proxy) as outer_port:
                        yield Chain(up.sim, log, inner_url, outer_port, ended)
                finally:
                    await outer_proxy.proxy.aclose()
        finally:
            await inner_proxy.proxy.aclose()


class Microphone:
    """A client's microphone: what it is told to say, at real-time pace in ``frame_bytes`` frames,
    and ``filler`` (silence by default) when it has nothing to say. Run :meth:`stream` as a task."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], rate_hz: int, frame_bytes: int) -> None:
        self._send = send
        self._frame_s = frame_bytes / 2 / rate_hz
        self._frame_bytes = frame_bytes
        self._script = bytearray()
        self.filler = bytes(frame_bytes)
        self.sent_s = 0.0

    def say(self, pcm: bytes) -> None:
        self._script += pcm

    @property
    def is_quiet(self) -> bool:
        """Everything it was told to say has gone out."""
        return not self._script

    async def stream(self) -> None:
        start = asyncio.get_running_loop().time()
        while True:
            frame = bytes(self._script[:self._frame_bytes]).ljust(self._frame_bytes, b"\0")
            if not self._script:
                frame = self.filler
            del self._script[:self._frame_bytes]
            await self._send(frame)
            self.sent_s += self._frame_s
            await at_real_time(start, self.sent_s)


Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def realtime_server(handler: Handler) -> AsyncIterator[str]:
    """A Realtime server on a loopback port that runs ``handler`` per connection; yields its URL."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/realtime"
